"""Turning what users pass as label maps into arrays the kernel can read.

Labels stay in their own dtype and memory: only byte-swapped, misaligned or
non-array inputs are converted.  Non-integer labels are refused rather than
cast, because a float label map is almost always a bug (logits or
probabilities passed by mistake) and truncating it would give a wrong number
quietly.

What can come in, and what it costs:
  NumPy arrays        used as they are (any strides).
  CPU torch tensors   viewed through ``Tensor.numpy()`` (shared memory, no
                      copy); torch is never imported here, a tensor is
                      recognised by its class.  Tensors on another device are
                      a TypeError that says to call ``.cpu()``: copying from a
                      GPU behind the user's back would hide a slow transfer.
  PIL images          ``np.asarray`` (PIL hands out a copy of its buffer);
                      label modes only ("1", "L", "P", "I;16*", "I").  A colour
                      image is a ValueError naming its mode: colour-coded label
                      maps need a palette lookup that the caller must choose.
  anything else       ``np.asarray``.
"""
from __future__ import annotations

import operator
import os
import sys

import numpy as np

from . import _core

MAX_CLASSES = 65534


# PIL modes whose pixels are label values (not colours).
_PIL_LABEL_MODES = frozenset({"1", "L", "P", "I", "I;16", "I;16L", "I;16B", "I;16N"})


def is_torch_tensor(x) -> bool:
    """Whether x is a torch.Tensor (or a subclass), without importing torch."""
    return any(c.__name__ == "Tensor" and c.__module__ == "torch" for c in type(x).__mro__)


def _is_pil_image(x) -> bool:
    return any(c.__name__ == "Image" and c.__module__ == "PIL.Image" for c in type(x).__mro__)


def tensor_as_numpy(x, name: str) -> np.ndarray:
    """A CPU torch tensor as an ndarray sharing its memory (no copy).

    Tensors with ``requires_grad`` are read through ``detach()`` (a view):
    metrics never take part in autograd.  Lazy conjugate/negative bits are
    resolved first, which copies only when such a bit is set.
    """
    device = getattr(x, "device", None)
    if device is None or device.type != "cpu":
        raise TypeError(
            f"{name} is a torch tensor on {device}; move it to the CPU first ({name}.cpu())")
    if getattr(x, "layout", None) is not None and str(x.layout) != "torch.strided":
        raise TypeError(f"{name} is a {x.layout} torch tensor; pass a dense one ({name}.to_dense())")
    t = x.detach()
    if t.is_conj():
        t = t.resolve_conj()
    if t.is_neg():
        t = t.resolve_neg()
    try:
        return t.numpy()
    except (TypeError, RuntimeError) as e:
        raise TypeError(f"{name} is a torch tensor of dtype {x.dtype} that NumPy cannot read: {e}") from None


def _pil_as_numpy(img, name: str) -> np.ndarray:
    mode = img.mode
    if mode not in _PIL_LABEL_MODES:
        raise ValueError(
            f"{name} is a PIL image in mode {mode!r}, which holds colours, not labels; label maps must be "
            f"single-channel ('L', 'P', 'I;16' or 'I'): convert colours to label indices first")
    return np.asarray(img)


def as_labels(x, name: str) -> np.ndarray:
    """A label map as an integer ndarray without copying where possible."""
    if isinstance(x, np.ndarray):
        arr = x
    elif is_torch_tensor(x):
        arr = tensor_as_numpy(x, name)
    elif _is_pil_image(x):
        arr = _pil_as_numpy(x, name)
    else:
        if isinstance(x, (str, bytes)):
            raise TypeError(f"{name} must be an array of integer labels, got {type(x).__name__}")
        try:
            arr = np.asarray(x)
        except ValueError as e:
            if isinstance(x, (list, tuple)):
                raise ValueError(
                    f"{name} is a list of label maps of different shapes ({e}); "
                    "ConfusionMatrix.update_many(preds, targets) counts such lists map by map") from None
            raise
    if arr.size == 0 and not isinstance(x, np.ndarray) and arr.dtype == np.float64:
        arr = arr.astype(np.int64)  # an empty list has no dtype of its own: it counts nothing
    kind = arr.dtype.kind
    if kind == "b":
        # The kernel reads a bool's byte as its label.  NumPy's own bools are
        # 0 or 1, but np.frombuffer or a view can hold any nonzero byte for True.
        bytes_ = arr.view(np.uint8)
        arr = bytes_ if bytes_.size == 0 or int(bytes_.max()) <= 1 else (bytes_ != 0).view(np.uint8)
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
        arr = arr.copy()  # a fresh allocation is aligned (ascontiguousarray keeps a contiguous misaligned view)
    return arr


# Kernel codes of the score types update_logits reads (csrc/ade20k_metrics/argmax.hpp ScoreType).
SCORE_TYPES = {"float32": 0, "float16": 1, "bfloat16": 2}


def as_scores(x, name: str = "logits", *, float64: bool = False) -> tuple[np.ndarray, int | None]:
    """Class scores as (array, score type code) without copying where possible.

    float32 and float16 are read as they are; a torch bfloat16 tensor, which
    NumPy cannot represent, is passed as a view of its 16-bit patterns.
    ``float64=True``: float64 scores too, with the code None (the kernel has
    no float64 argmax; the caller reduces them to labels a slab at a time).
    Other dtypes are a TypeError: converting scores would copy the largest
    array of an evaluation, so the caller should do it knowingly.
    """
    if is_torch_tensor(x):
        device = getattr(x, "device", None)
        if device is None or device.type != "cpu":
            raise TypeError(f"{name} is a torch tensor on {device}; move it to the CPU first ({name}.cpu()), "
                            f"or take the argmax on the device and pass labels to update()")
        if str(x.dtype) == "torch.bfloat16":
            torch = sys.modules["torch"]  # x is a tensor, so torch is imported
            return tensor_as_numpy(x.view(torch.int16), name), SCORE_TYPES["bfloat16"]
        arr = tensor_as_numpy(x, name)
    elif isinstance(x, np.ndarray):
        arr = x
    else:
        arr = np.asarray(x)
    if float64 and arr.dtype.kind == "f" and arr.dtype.itemsize == 8:
        return (arr if arr.dtype.isnative else arr.astype(arr.dtype.newbyteorder("="))), None
    if arr.dtype.kind != "f" or arr.dtype.itemsize not in (2, 4):
        allowed = "float64, float32 or float16" if float64 else "float32 or float16"
        raise TypeError(
            f"{name} must hold {allowed} scores (or a bfloat16 torch tensor), got dtype {arr.dtype}"
            + ("; integer arrays are label maps: pass them to update()" if arr.dtype.kind in "iub" else
               f"; convert explicitly, e.g. {name}.astype(np.float32)"))
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    if not arr.flags.aligned:
        arr = arr.copy()  # a fresh allocation is aligned (ascontiguousarray keeps a contiguous misaligned view)
    return arr, SCORE_TYPES["float32"] if arr.dtype.itemsize == 4 else SCORE_TYPES["float16"]


def _is_sequence_of_maps(x) -> bool:
    return isinstance(x, (list, tuple)) and not (len(x) > 0 and isinstance(x[0], (int, np.integer)))


def label_pairs(preds, targets) -> list[tuple[np.ndarray, np.ndarray]]:
    """(pred, target) arrays of one map pair, or of each pair of two equally long lists of maps.

    Every input is converted and shape-checked before anything is counted, so
    a bad map anywhere in a list fails the whole list.
    """
    if _is_sequence_of_maps(preds) and _is_sequence_of_maps(targets):
        if len(preds) != len(targets):
            raise ValueError(f"preds and targets must be equally long lists, got {len(preds)} and {len(targets)}")
        pairs = []
        for i, (p, t) in enumerate(zip(preds, targets)):
            pa, ta = as_labels(p, f"preds[{i}]"), as_labels(t, f"targets[{i}]")
            if pa.shape != ta.shape:
                raise ValueError(f"preds[{i}] and targets[{i}] must have the same shape, "
                                 f"got {pa.shape} and {ta.shape}")
            pairs.append((pa, ta))
        return pairs
    pa, ta = as_labels(preds, "pred"), as_labels(targets, "target")
    check_pair(pa, ta)
    return [(pa, ta)]


def check_pair(pred: np.ndarray, target: np.ndarray) -> None:
    if pred.shape != target.shape:
        raise ValueError(f"pred and target must have the same shape, got {pred.shape} and {target.shape}")


def as_int(value, name: str, kind: str = "an int") -> int:
    """``value`` as a Python int, or a TypeError naming ``name``; bools are refused (True is no class)."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be {kind}, got bool")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be {kind}, got {type(value).__name__}") from None


def check_num_classes(num_classes) -> int:
    k = as_int(num_classes, "num_classes")
    if not 1 <= k <= MAX_CLASSES:
        raise ValueError(f"num_classes must be in [1, {MAX_CLASSES}], got {k}")
    check_matrix_memory(k)
    return k


def matrix_bytes(k: int) -> int:
    """Memory an accumulator of k classes and one update may need at most, on any number of threads:
    the K x K int64 matrix and what the kernel allocates for a call (its working table, and
    per-thread counters only for tables small enough to copy: see confusion.hpp call_scratch_bytes)."""
    return k * k * 8 + int(_core.call_scratch_bytes(k))


def memory_limit() -> int | None:
    """Bytes of memory this process can have: physical memory, capped by a cgroup limit and
    by what is left under an address-space or data limit (``ulimit -v`` / ``-d``)."""
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
    left = _rlimit_left()
    if left is not None:
        limit = left if limit is None else min(limit, left)
    return limit if limit and limit > 0 else None


def _rlimit_left() -> int | None:
    # Every allocation counts against RLIMIT_AS (virtual size) and, on Linux,
    # RLIMIT_DATA (private writable memory, VmData); what is left is the limit
    # less what the process already has, read from /proc.
    try:
        import resource
    except ImportError:  # not POSIX
        return None
    left = None
    for name, field in (("RLIMIT_AS", "VmSize"), ("RLIMIT_DATA", "VmData")):
        which = getattr(resource, name, None)
        if which is None:
            continue
        soft = resource.getrlimit(which)[0]
        if soft == resource.RLIM_INFINITY or soft < 0:
            continue
        used = _proc_status_bytes(field)
        if used is None:
            continue
        left = soft - used if left is None else min(left, soft - used)
    return None if left is None else max(left, 1)


def _proc_status_bytes(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024  # "VmSize:  123 kB"
    except (OSError, ValueError, IndexError):
        pass
    return None


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
    value = as_int(ignore_index, "ignore_index", "an int or None")
    if not -(2**63) <= value < 2**63:
        raise ValueError(f"ignore_index must fit in int64, got {value}")
    return value
