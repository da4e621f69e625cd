# Type stubs for the C++ extension ade20k_metrics._core (src/module.cpp, src/register_logits.cpp,
# src/register_image_stats.cpp).
# src/register_boundary.cpp).
# Internal API: use ade20k_metrics.confusion_matrix / ConfusionMatrix.
from __future__ import annotations

import numpy as np
import numpy.typing as npt

def accumulate(
    target: npt.NDArray[np.integer] | npt.NDArray[np.bool_],
    pred: npt.NDArray[np.integer] | npt.NDArray[np.bool_],
    out: npt.NDArray[np.int64],
    num_classes: int,
    ignore_index: int | None,
    lut: npt.NDArray[np.int32] | None = None,
    lut_lo: int = 0,
    reduce_zero_label: bool = False,
    n_threads: int = 1,
    min_pixels_per_thread: int = ...,
    direct_below: int = ...,
    flush_limit: int = ...,
    isa: int = -1,
    chunk_pixels: int = ...,
    private_up_to: int = ...,
    keep_up_to: int = ...,
) -> tuple[int, int, int]:
    """Add the (target, pred) histogram to out unless a label is invalid; returns (invalid_target, invalid_pred, threads_used)."""

def accumulate_resized_argmax(
    target: npt.NDArray[np.integer] | npt.NDArray[np.bool_],
    scores: npt.NDArray[np.float32] | npt.NDArray[np.float16] | npt.NDArray[np.int16] | npt.NDArray[np.uint16],
    score_type: int,
    out: npt.NDArray[np.int64],
    num_classes: int,
    ignore_index: int | None,
    lut: npt.NDArray[np.int32] | None = None,
    lut_lo: int = 0,
    reduce_zero_label: bool = False,
    n_threads: int = 1,
    min_scores_per_thread: int = ...,
    chunk_pixels: int = ...,
) -> tuple[int, int, int]:
    """Add the (target, argmax of the (N, C, h, w) scores bilinearly upsampled to the (N, H, W) target)
    histogram to out unless a label is invalid (register_resize.cpp); returns (invalid_target, invalid_pred, threads)."""


def accumulate_argmax(
    target: npt.NDArray[np.integer] | npt.NDArray[np.bool_],
    scores: npt.NDArray[np.float32] | npt.NDArray[np.float16] | npt.NDArray[np.int16] | npt.NDArray[np.uint16],
    score_type: int,
    axis: int,
    out: npt.NDArray[np.int64],
    num_classes: int,
    ignore_index: int | None,
    lut: npt.NDArray[np.int32] | None = None,
    lut_lo: int = 0,
    reduce_zero_label: bool = False,
    n_threads: int = 1,
    min_scores_per_thread: int = ...,
    tile: int = ...,
    isa: int = -1,
    chunk_pixels: int = ...,
    private_up_to: int = ...,
) -> tuple[int, int, int]:
    """Add the (target, argmax of scores over axis) histogram to out unless a label is invalid.

    score_type: 0 float32, 1 float16, 2 bfloat16 (passed as its 16-bit integer bits).
    """

def accumulate_image(
    target: npt.NDArray[np.integer] | npt.NDArray[np.bool_],
    pred: npt.NDArray[np.integer] | npt.NDArray[np.bool_],
    out: npt.NDArray[np.int64],
def accumulate_boundary(
    target: npt.NDArray[np.integer] | npt.NDArray[np.bool_],
    pred: npt.NDArray[np.integer] | npt.NDArray[np.bool_],
    out: npt.NDArray[np.int64],
    boundary_out: npt.NDArray[np.int64],
    num_classes: int,
    ignore_index: int | None,
    lut: npt.NDArray[np.int32] | None = None,
    lut_lo: int = 0,
    reduce_zero_label: bool = False,
    with_cells: bool = False,
    n_threads: int = 1,
    min_pixels_per_thread: int = ...,
    direct_below: int = ...,
    flush_limit: int = ...,
    isa: int = -1,
    chunk_pixels: int = ...,
) -> tuple[int, int, npt.NDArray[np.int64] | None, npt.NDArray[np.int64] | None]:
    """Add one image's histogram to out unless a label is invalid; returns (invalid_target, invalid_pred, record, cells).

    record: (4, n) rows class / tp / fp / fn over the classes present; cells: (2, m) flat index / count
    of the image's non-zero cells when with_cells; both None when a label is invalid.
    """
    target_raw_equal: bool = True,
    dilation: int = 1,
    n_threads: int = 1,
    min_pixels_per_thread: int = ...,
    isa: int = -1,
) -> tuple[int, int, int]:
    """Add region (K, K) and boundary (K+1, K+1) counts of the maps along the last two axes unless a label is invalid."""

def confusion_matrix_small(
    target: npt.NDArray[np.integer],
    pred: npt.NDArray[np.integer],
    num_classes: int,
    ignore_index: int | None,
) -> npt.NDArray[np.int64] | None:
    """A new (K, K) matrix for a small map, or None where accumulate must run (see module.cpp)."""

def call_scratch_bytes(num_classes: int) -> int:
    """Bytes one accumulate or accumulate_argmax call may allocate besides its (K, K) output."""

def add_counts(out: npt.NDArray[np.int64], other: npt.NDArray[np.int64]) -> None: ...
def openmp_enabled() -> bool: ...
def omp_max_threads() -> int: ...
def stream_read(buffer: npt.NDArray[np.generic], n_threads: int = 1) -> int: ...
def simd() -> str: ...
