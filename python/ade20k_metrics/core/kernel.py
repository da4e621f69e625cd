"""The one call into the C++ kernel that counts label pairs, and what is said when it refuses.

``count`` adds the (target, pred) histogram of one pair of label maps to a
matrix, or raises ValueError leaving it unchanged.  Every accumulator of the
package (``ConfusionMatrix``, per-sample records, ``ImageStats``) counts
through it, so the checks and the error messages are the same everywhere.
"""
from __future__ import annotations

import numpy as np

from . import _core, reference
from .threads import kernel_threads
from .tuning import override_options


def openmp_enabled() -> bool:
    """Whether the installed kernel was built with OpenMP (else it runs on one thread)."""
    return bool(_core.openmp_enabled())


def simd() -> str:
    """The vector instruction set the kernel picked on this CPU ("avx512bw", "avx2", "neon" or "portable")."""
    return str(_core.simd())


# Kernel tuning (see csrc/ade20k_metrics/confusion.hpp KernelOptions), changed
# only through ``kernel_options`` by tests and benchmarks that force a code path.
_KERNEL_OPTIONS: dict[str, int] = {}


def kernel_options(**options: int):
    """Temporarily override kernel tuning: min_pixels_per_thread, direct_below, flush_limit, isa, chunk_pixels,
    private_up_to, keep_up_to.

    For tests and benchmarks (forcing the parallel path, frequent counter
    flushes, the portable code; with private_up_to=0 and keep_up_to=0 the
    paths of large K on a small one: the shared table, a working table for the
    call only, the sorted small-input count); results never depend on these.
    """
    allowed = {"min_pixels_per_thread", "direct_below", "flush_limit", "isa", "chunk_pixels", "private_up_to",
               "keep_up_to"}
    return override_options(_KERNEL_OPTIONS, allowed, "kernel", options)


def count(pred: np.ndarray, target: np.ndarray, out: np.ndarray, num_classes: int,
           ignore_index: int | None, n_threads: int, lookup: tuple | None = None) -> None:
    """Add the histogram of (target, pred) to ``out``, or raise leaving it unchanged."""
    lut, lut_lo, reduce_zero_label, _ = lookup if lookup is not None else (None, 0, False, None)
    bad_target, bad_pred, _ = _core.accumulate(
        target, pred, out, num_classes, ignore_index, lut, lut_lo, reduce_zero_label, kernel_threads(n_threads),
        **_KERNEL_OPTIONS)
    if bad_target or bad_pred:
        _raise_invalid(pred, target, num_classes, ignore_index, bad_target, bad_pred, lookup)


def _raise_invalid(pred, target, num_classes, ignore_index, bad_target, bad_pred, lookup) -> None:
    # Error path only.  The kernel counted the invalid labels; an example value is
    # found with the reference rules, a slice at a time, so that one bad pixel in
    # a huge input costs neither a Python object per pixel nor much time.
    reduce_zero_label, label_map = (lookup[2], lookup[3]) if lookup is not None else (False, None)
    t = np.asarray(target).reshape(-1)
    p = np.asarray(pred).reshape(-1)
    example_target = example_pred = None
    for start in range(0, t.size, _EXAMPLE_SLICE):
        t_part, p_part = t[start:start + _EXAMPLE_SLICE], p[start:start + _EXAMPLE_SLICE]
        # Skip slices whose labels are all classes, without Python objects.
        if bad_target and lookup is None and not _outside_classes(t_part, num_classes).any():
            continue
        if not bad_target and not _outside_classes(p_part, num_classes).any():
            continue
        rows = reference.target_rows(t_part, num_classes, ignore_index, reduce_zero_label, label_map)
        if bad_target:
            found = t_part[rows == reference.INVALID]
            if found.size:
                example_target = int(found[0])
                break
            continue
        p_obj = p_part.astype(object)
        found = p_part[(rows >= 0) & ((p_obj < 0) | (p_obj >= num_classes))]
        if found.size:
            example_pred = int(found[0])
            break
    if bad_target:
        kept = "" if ignore_index is None else f" and not ignore_index={ignore_index}"
        raise ValueError(
            f"target has {bad_target} label(s) outside [0, {num_classes}){kept}{_example(example_target)}"
            + (" (after reduce_zero_label/label_map)" if lookup is not None else ""))
    raise ValueError(
        f"pred has {bad_pred} label(s) outside [0, {num_classes}) at evaluated pixels{_example(example_pred)}")


_EXAMPLE_SLICE = 1 << 20


def _outside_classes(labels: np.ndarray, num_classes: int) -> np.ndarray:
    if labels.dtype.kind == "b":
        labels = labels.view(np.uint8)
    outside = labels >= num_classes if labels.dtype.itemsize > 1 or num_classes < 256 else np.zeros(labels.shape, bool)
    if labels.dtype.kind == "i":
        outside |= labels < 0
    return outside


def _example(value: int | None) -> str:
    return "" if value is None else f", e.g. {value}"
