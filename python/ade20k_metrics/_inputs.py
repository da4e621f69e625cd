"""Turning what users pass as label maps into arrays the kernel can read.

Labels stay in their own dtype and memory: only byte-swapped, misaligned or
non-array inputs are converted.  Non-integer labels are refused rather than
cast, because a float label map is almost always a bug (logits or
probabilities passed by mistake) and truncating it would give a wrong number
quietly.
"""
from __future__ import annotations

import operator
import os

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
    check_matrix_memory(k)
    return k


def matrix_bytes(k: int) -> int:
    """Memory one update with k classes needs at least: the K x K int64 matrix,
    the kernel's (K+2) x (K+1) int64 working table and one thread's uint32 counters."""
    bins = (k + 2) * (k + 1)
    return k * k * 8 + bins * 8 + bins * 4


def memory_limit() -> int | None:
    """Bytes of memory this process can have: physical memory, capped by a cgroup limit."""
    limit = None
    try:
        limit = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # not POSIX
        pass
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as f:
                value = int(f.read())
        except (OSError, ValueError):  # absent, or "max"
            continue
        limit = value if limit is None else min(limit, value)
    return limit if limit and limit > 0 else None


def check_matrix_memory(k: int) -> None:
    # A dense matrix that cannot fit would otherwise fail deep inside an update
    # (MemoryError at best, the OOM killer at worst): refuse it up front.
    need = matrix_bytes(k)
    if need < 1 << 26:  # any machine has 64 MiB; spare the per-call look-up
        return
    have = memory_limit()
    if have is not None and need > have:
        raise ValueError(
            f"num_classes={k} needs about {need / 2**30:.1f} GiB for the dense confusion matrix and "
            f"the kernel's working tables, more than the {have / 2**30:.1f} GiB of memory available "
            f"to this process")


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
