"""Boundary metrics' counting: the kernel calls, their checks, and the accumulator state.

Boundary IoU (``boundary=ratio``) counts, in the same pass as the region
confusion matrix, a (K+1, K+1) matrix of inner-band labels (K = "not in the
band"; csrc/ade20k_metrics/boundary.hpp).  The BF score (``boundary_f1=ratio``)
keeps, per class, the sum of the per-image F1 scores and the number of images
where it is defined.  The rules are DESIGN.md's ("Boundary metrics");
core/boundary_reference.py spells them out in NumPy.
"""
from __future__ import annotations

import math
import numbers
import threading
from collections.abc import Callable

import numpy as np

from . import _core
from .distributed import _all_reduce, _dist, _sum_over_ranks
from .inputs import as_labels, check_ignore_index, check_num_classes, check_pair, memory_limit
from .kernel import _raise_invalid
from .threads import kernel_threads, resolve_threads
from .tuning import override_options

# Kernel tuning (BoundaryOptions in boundary.hpp), changed only by tests and
# benchmarks through ``boundary_options``; results never depend on it.
_BOUNDARY_OPTIONS: dict[str, int] = {}


def boundary_options(**options: int):
    """Temporarily override min_pixels_per_thread or isa of the boundary kernels (tests, benchmarks)."""
    return override_options(_BOUNDARY_OPTIONS, {"min_pixels_per_thread", "isa"}, "boundary", options)


def check_ratio(value, name: str) -> float | None:
    """A boundary ratio (``boundary=``, ``boundary_f1=``, ``dilation_ratio=``): None or a positive finite real."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a positive real number (a fraction of the image diagonal) or None, "
                        f"got {type(value).__name__}")
    ratio = float(value)
    if not (math.isfinite(ratio) and ratio > 0):
        raise ValueError(f"{name} must be positive and finite (a fraction of the image diagonal), got {value!r}")
    return ratio


def dilation_pixels(height: int, width: int, ratio: float) -> int:
    """d = max(1, round(ratio * sqrt(h*h + w*w))): boundary-iou-api's rule (Python's round, half to even)."""
    return max(1, int(round(ratio * math.sqrt(float(height) * height + float(width) * width))))


def f1_theta(height: int, width: int, ratio: float) -> float:
    """The BF threshold in pixels: ratio times the image diagonal (float64, not rounded)."""
    return ratio * math.sqrt(float(height) * height + float(width) * width)


def check_maps(pred: np.ndarray, target: np.ndarray) -> None:
    check_pair(pred, target)
    if pred.ndim < 2:
        raise ValueError(f"boundary metrics need label maps (H, W) or batches (N, H, W), got shape {pred.shape}")


def count_boundary(pred: np.ndarray, target: np.ndarray, out: np.ndarray, boundary_out: np.ndarray,
                   num_classes: int, ignore_index: int | None, n_threads: int, lookup: tuple | None,
                   ratio: float) -> None:
    """Add the region counts to ``out`` and the band counts to ``boundary_out``, or raise leaving both unchanged."""
    check_maps(pred, target)
    h, w = target.shape[-2:]
    lut, lut_lo, reduce_zero_label, label_map = lookup if lookup is not None else (None, 0, False, None)
    # Raw target bits decide the bands unless a label_map may merge labels (then the kernel codes rows first).
    raw_equal = not label_map
    bad_target, bad_pred, _ = _core.accumulate_boundary(
        target, pred, out, boundary_out, num_classes, ignore_index, lut, lut_lo, reduce_zero_label, raw_equal,
        dilation_pixels(h, w, ratio), kernel_threads(n_threads), **_BOUNDARY_OPTIONS)
    if bad_target or bad_pred:
        _raise_invalid(pred, target, num_classes, ignore_index, bad_target, bad_pred, lookup)


def count_bf(pred: np.ndarray, target: np.ndarray, num_classes: int, ignore_index: int | None, n_threads: int,
             lookup: tuple | None, ratio: float) -> tuple[np.ndarray, np.ndarray, float, int]:
    """BF scores of one map or a batch: (f1_sum (K,), f1_count (K,), sum of per-image means, images scored).

    Labels that are no class are skipped: count the region pairs too (count_boundary) to have them reported.
    """
    check_maps(pred, target)
    h, w = target.shape[-2:]
    lut, lut_lo, reduce_zero_label, _ = lookup if lookup is not None else (None, 0, False, None)
    f1_sum, f1_count, image_sum, images = _core.bf_scores(
        target, pred, num_classes, ignore_index, lut, lut_lo, reduce_zero_label, f1_theta(h, w, ratio),
        kernel_threads(n_threads))
    return f1_sum, f1_count, float(image_sum), int(images)


def band_iou(boundary_matrix: np.ndarray) -> np.ndarray:
    """(K,) tp / union of a (K+1, K+1) boundary matrix; NaN where the union is 0."""
    b = np.asarray(boundary_matrix)
    k = b.shape[0] - 1
    tp = np.diag(b)[:k].astype(np.float64)
    union = b[:k, :].sum(axis=1) + b[:, :k].sum(axis=0) - tp
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, tp / np.where(union > 0, union, 1), np.nan)


def boundary_iou(pred, target, num_classes: int, *, dilation_ratio: float = 0.02, ignore_index: int | None = 255,
                 n_threads: int | None = None) -> np.ndarray:
    """Per-class Boundary IoU of one map (H, W), or of a batch (N, H, W) pooled over its images.

    For class c: |G_c^d & P_c^d| / |G_c^d | P_c^d|, where X_c^d is the inner
    band of class c (its pixels within chessboard distance d of another label
    or of the image's outside), d = max(1, round(dilation_ratio * diagonal)):
    exactly boundary-iou-api's ``boundary_iou`` on gt == c and pred == c.
    Pixels whose target is ``ignore_index`` are not counted (they still bound
    the ground-truth bands).  Returns (num_classes,) float64, NaN where the union is 0.
    """
    k = check_num_classes(num_classes)
    ignore = check_ignore_index(ignore_index)
    ratio = check_ratio(dilation_ratio, "dilation_ratio")
    if ratio is None:
        raise TypeError("dilation_ratio must be a positive real number, got None")
    threads = resolve_threads(n_threads)
    p = as_labels(pred, "pred")
    t = as_labels(target, "target")
    out = np.zeros((k, k), dtype=np.int64)
    band = np.zeros((k + 1, k + 1), dtype=np.int64)
    count_boundary(p, t, out, band, k, ignore, threads, None, ratio)
    return band_iou(band)


_INT64_MAX = 2**63 - 1


class BoundaryCounts:
    """The boundary state of one ``ConfusionMatrix``: band counts, BF sums, or both.

    ``ratio`` (``boundary=``): the (K+1, K+1) int64 band matrix.  ``f1_ratio``
    (``boundary_f1=``): per class the float64 sum of per-image BF scores and
    the int64 number of images where it is defined, plus the sum over images
    of each image's mean over its classes and the number of images scored
    (MATLAB's data-set MeanBFScore).  The band matrix changes only through
    the kernel's and ``_core.add_counts``' checked adds (GIL held); the float
    sums under a lock of their own.
    """

    def __init__(self, num_classes: int, ratio: float | None, f1_ratio: float | None):
        self.num_classes = num_classes
        self.ratio = ratio
        self.f1_ratio = f1_ratio
        self.matrix = np.zeros((num_classes + 1, num_classes + 1), np.int64) if ratio is not None else None
        self.f1_sum = np.zeros(num_classes, np.float64)
        self.f1_count = np.zeros(num_classes, np.int64)
        self.image_sum = 0.0
        self.images = 0
        self._lock = threading.Lock()

    @classmethod
    def create(cls, num_classes: int, boundary, boundary_f1) -> BoundaryCounts | None:
        """None when neither metric is asked for (the accumulator then costs what it always did)."""
        ratio = check_ratio(boundary, "boundary")
        f1_ratio = check_ratio(boundary_f1, "boundary_f1")
        if ratio is None and f1_ratio is None:
            return None
        if ratio is not None:
            check_boundary_memory(num_classes)
        return cls(num_classes, ratio, f1_ratio)

    def __getstate__(self):  # picklable: the lock is made anew
        state = dict(self.__dict__)
        del state["_lock"]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def settings(self) -> tuple:
        return (self.ratio, self.f1_ratio)

    def empty(self) -> BoundaryCounts:
        return BoundaryCounts(self.num_classes, self.ratio, self.f1_ratio)

    def snapshot_matrix(self) -> np.ndarray | None:
        if self.matrix is None:
            return None
        out = np.zeros_like(self.matrix)
        _core.add_counts(out, self.matrix)  # a copy with the GIL held: each update whole or not at all
        return out

    def bf_pair(self) -> tuple[np.ndarray, np.ndarray] | None:
        if self.f1_ratio is None:
            return None
        with self._lock:
            return self.f1_sum.copy(), self.f1_count.copy()

    def count(self, pred: np.ndarray, target: np.ndarray, region_out: np.ndarray, num_classes: int,
              ignore_index: int | None, n_threads: int, lookup, plain_count) -> None:
        """Count one pair into ``region_out`` and this state, or raise with neither changed.

        The BF scores are computed first into temporaries (the kernel skips
        labels that are no class), then the region counts (with the bands,
        when ``boundary=``) decide whether the labels are valid, then the BF
        sums are added.  ``plain_count(pred, target, out)``: the region count
        without bands.
        """
        check_maps(pred, target)
        bf = count_bf(pred, target, num_classes, ignore_index, n_threads, lookup, self.f1_ratio) \
            if self.f1_ratio is not None else None
        if self.ratio is not None:
            count_boundary(pred, target, region_out, self.matrix, num_classes, ignore_index, n_threads, lookup,
                           self.ratio)
        else:
            plain_count(pred, target, region_out)
        if bf is not None:
            self._add_bf(*bf)

    def _add_bf(self, f1_sum, f1_count, image_sum, images) -> None:
        with self._lock:
            self.f1_sum += f1_sum
            self.f1_count += f1_count
            self.image_sum += image_sum
            self.images += images

    def check_addable(self, other: BoundaryCounts) -> None:
        """OverflowError (before anything is added) if other's band counts cannot be added to this one's."""
        if self.matrix is not None and np.any(self.matrix > _INT64_MAX - other.matrix):
            raise OverflowError("adding these boundary counts would overflow the int64 matrix; nothing was added")

    def add(self, other: BoundaryCounts) -> None:
        if self.matrix is not None:
            _core.add_counts(self.matrix, other.matrix)
        if self.f1_ratio is not None:
            with other._lock:
                parts = (other.f1_sum.copy(), other.f1_count.copy(), other.image_sum, other.images)
            self._add_bf(*parts)

    def copy(self) -> BoundaryCounts:
        new = self.empty()
        new.add(self)
        return new

    def equal(self, other: BoundaryCounts) -> bool:
        same = self.settings() == other.settings()
        if same and self.matrix is not None:
            same = np.array_equal(self.snapshot_matrix(), other.snapshot_matrix())
        if same and self.f1_ratio is not None:
            a, b = self.bf_pair(), other.bf_pair()
            same = (np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
                    and (self.image_sum, self.images) == (other.image_sum, other.images))
        return same

    # -- state ------------------------------------------------------------------------------------
    def state(self) -> dict:
        """The state_dict entries (plain types and arrays)."""
        out = {"boundary": self.ratio, "boundary_f1": self.f1_ratio}
        if self.matrix is not None:
            out["boundary_matrix"] = self.snapshot_matrix()
        if self.f1_ratio is not None:
            with self._lock:
                out.update(bf_sum=self.f1_sum.copy(), bf_count=self.f1_count.copy(),
                           bf_image_sum=float(self.image_sum), bf_images=int(self.images))
        return out

    def load(self, state) -> None:
        """Fill from state entries (``state()``'s keys), every value checked; ValueError/TypeError if bad."""
        k = self.num_classes
        if self.matrix is not None:
            matrix = _counts_array(state, "boundary_matrix", (k + 1, k + 1))
            self.matrix[...] = matrix
        if self.f1_ratio is not None:
            f1_sum = np.asarray(_required(state, "bf_sum"))
            f1_count = _counts_array(state, "bf_count", (k,))
            if f1_sum.shape != (k,) or f1_sum.dtype.kind != "f":
                raise ValueError(f"state bf_sum must be ({k},) floats, got {f1_sum.dtype} {f1_sum.shape}")
            if not np.all(np.isfinite(f1_sum)) or np.any(f1_sum < 0) or np.any(f1_sum > f1_count):
                raise ValueError("state bf_sum must lie in [0, bf_count] (each image's score is in [0, 1])")
            image_sum = _required(state, "bf_image_sum")
            images = _required(state, "bf_images")
            if isinstance(image_sum, bool) or not isinstance(image_sum, numbers.Real):
                raise TypeError(f"state bf_image_sum must be a real number, got {type(image_sum).__name__}")
            if isinstance(images, (bool, np.bool_)) or not isinstance(images, numbers.Integral):
                raise TypeError(f"state bf_images must be an int, got {type(images).__name__}")
            if not (math.isfinite(float(image_sum)) and 0 <= float(image_sum) <= int(images)):
                raise ValueError("state bf_image_sum must lie in [0, bf_images]")
            self.f1_sum[...] = f1_sum
            self.f1_count[...] = f1_count
            self.image_sum = float(image_sum)
            self.images = int(images)


def _required(state, name: str):
    if name not in state:
        raise ValueError(f"state is missing {name!r}")
    return state[name]


def _counts_array(state, name: str, shape: tuple) -> np.ndarray:
    a = np.asarray(_required(state, name))
    if a.shape != shape:
        raise ValueError(f"state {name} has shape {a.shape}, expected {shape}")
    if a.dtype.kind not in "iu":
        raise TypeError(f"state {name} must hold integers, got dtype {a.dtype}")
    if a.size and a.dtype.kind == "i" and a.min() < 0:
        raise ValueError(f"state {name} has negative counts")
    if a.size and a.dtype.kind == "u" and int(a.max()) > _INT64_MAX:
        raise ValueError(f"state {name} has counts too large for int64")
    return a


def check_boundary_memory(num_classes: int) -> None:
    """Refuse boundary= where one thread's count table cannot fit (32 bytes per bin, 4 (K+2)(K+1) bins).

    One thread's is what a call can need: the kernel gives a team at most
    512 MiB of tables (fewer threads for larger K, down to one), and a table's
    pages become resident only where counts land.
    """
    need = 4 * (num_classes + 2) * (num_classes + 1) * 16 + (num_classes + 1) ** 2 * 8
    if need < 1 << 26:
        return
    have = memory_limit()
    if have is not None and need > have:
        raise ValueError(f"boundary= with num_classes={num_classes} needs about {need / 2**30:.1f} GiB per thread "
                         f"for its count table, more than the {have / 2**30:.1f} GiB available")


def sync_boundary(counts: BoundaryCounts, group) -> Callable[[], None]:
    """Sum the boundary state over the group's ranks; returns the function that stores the sums.

    The collectives run now (an OverflowError here, on every rank, changes
    nothing); the caller stores the sums once the region matrix's sync has
    succeeded too, so a failed sync leaves both as they were.
    """
    torch, dist = _dist()
    # Every rank must hold the same state layout before any collective on it.
    gathered: list = [None] * dist.get_world_size(group)
    dist.all_gather_object(gathered, (counts.num_classes, *counts.settings()), group=group)
    if any(g != gathered[0] for g in gathered):
        raise ValueError(f"ranks disagree on (num_classes, boundary, boundary_f1): {gathered}")
    stores = []
    if counts.matrix is not None:
        local = counts.snapshot_matrix()
        summed, _ = _sum_over_ranks(torch, dist, group, local, 0)
        if summed.dtype == object and summed.size and max(summed) > _INT64_MAX:
            raise OverflowError("the sum over ranks of a boundary count would overflow int64; nothing was summed")
        summed_matrix = summed.astype(np.int64).reshape(local.shape)
        stores.append(lambda: counts.matrix.__setitem__(Ellipsis, summed_matrix))
    if counts.f1_ratio is not None:
        with counts._lock:
            ints = np.concatenate([counts.f1_count, [counts.images]]).astype(np.int64)
            floats = np.concatenate([counts.f1_sum, [counts.image_sum]]).astype(np.float64)
        int_sum, _ = _sum_over_ranks(torch, dist, group, ints, 0)
        float_sum = _all_reduce(torch, dist, group, floats)
        int_sum = np.asarray(int_sum).astype(np.int64)

        def store_bf():
            with counts._lock:
                counts.f1_count[...] = int_sum[:-1]
                counts.images = int(int_sum[-1])
                counts.f1_sum[...] = float_sum[:-1]
                counts.image_sum = float(float_sum[-1])

        stores.append(store_bf)

    def store_all() -> None:
        for store in stores:
            store()

    return store_all
