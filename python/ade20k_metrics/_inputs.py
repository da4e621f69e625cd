"""Turning what users pass as label maps into arrays the kernel can read.

Labels stay in their own dtype and memory: only byte-swapped, misaligned or
non-array inputs are converted.  Non-integer labels are refused rather than
cast, because a float label map is almost always a bug (logits or
probabilities passed by mistake) and truncating it would give a wrong number
quietly.
"""
from __future__ import annotations

import operator

import numpy as np

MAX_CLASSES = 65534


def as_labels(x, name: str) -> np.ndarray:
    """A label map as an integer ndarray without copying where possible."""
    if isinstance(x, np.ndarray):
        arr = x
    else:
        module = type(x).__module__
        if module.startswith("torch") and getattr(x, "device", None) is not None and x.device.type != "cpu":
            raise TypeError(
                f"{name} is a torch tensor on {x.device}; move it to the CPU first ({name}.cpu())"
            )
        if isinstance(x, (str, bytes)):
            raise TypeError(f"{name} must be an array of integer labels, got {type(x).__name__}")
        arr = np.asarray(x)
    kind = arr.dtype.kind
    if kind == "b":
        arr = arr.view(np.uint8)
    elif kind not in "iu":
        what = {"f": "floating-point", "c": "complex", "O": "object", "U": "string", "S": "bytes"}.get(
            kind, arr.dtype.name
        )
        raise TypeError(
            f"{name} has {what} dtype {arr.dtype}; labels must be integers "
            f"(cast explicitly, e.g. {name}.astype(np.int64), if the values are whole numbers)"
        )
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    if not arr.flags.aligned:
        arr = np.ascontiguousarray(arr)
    return arr


def check_pair(pred: np.ndarray, target: np.ndarray) -> None:
    if pred.shape != target.shape:
        raise ValueError(f"pred and target must have the same shape, got {pred.shape} and {target.shape}")


def check_num_classes(num_classes) -> int:
    if isinstance(num_classes, bool):
        raise TypeError("num_classes must be an int, got bool")
    try:
        k = operator.index(num_classes)
    except TypeError:
        raise TypeError(f"num_classes must be an int, got {type(num_classes).__name__}") from None
    if not 1 <= k <= MAX_CLASSES:
        raise ValueError(f"num_classes must be in [1, {MAX_CLASSES}], got {k}")
    return k


def check_ignore_index(ignore_index) -> int | None:
    if ignore_index is None:
        return None
    if isinstance(ignore_index, bool):
        raise TypeError("ignore_index must be an int or None, got bool")
    try:
        value = operator.index(ignore_index)
    except TypeError:
        raise TypeError(f"ignore_index must be an int or None, got {type(ignore_index).__name__}") from None
    if not -(2**63) <= value < 2**63:
        raise ValueError(f"ignore_index must fit in int64, got {value}")
    return value
