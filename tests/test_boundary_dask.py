"""ade20k_metrics.dask with boundary= / boundary_f1=: partial accumulators merged, against the NumPy reference.

Dask's threaded scheduler (tests/test_dask.py runs the matrix path on a real
two-process cluster; the partials here are ConfusionMatrix objects, whose
pickling tests/test_boundary_accumulator.py covers).
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from ade20k_metrics.core import boundary_reference as ref

da = pytest.importorskip("dask.array")
Image = pytest.importorskip("PIL.Image")
from ade20k_metrics.dask import evaluate_arrays, evaluate_files  # noqa: E402

K = 5


def _blocks(rng, shape, high, block=3):
    h, w = shape
    coarse = rng.integers(0, high + 1, size=(-(-h // block), -(-w // block)))
    return np.kron(coarse, np.ones((block, block), dtype=np.int64))[:h, :w].astype(np.uint8)


def expected(preds, targets, ratio, theta):
    """Reference band matrix (summed) and per-class BF (mean over images where defined), ADE-style targets."""
    band = sum(ref.boundary_matrix(p, t, K, dilation_ratio=ratio, reduce_zero_label=True)
               for p, t in zip(preds, targets))
    scores = np.concatenate([ref.boundary_f1_per_image(p, t, K, boundary_f1=theta, reduce_zero_label=True)
                             for p, t in zip(preds, targets)])
    bf = []
    for c in range(K):
        defined = scores[~np.isnan(scores[:, c]), c]
        bf.append(defined.sum() / len(defined) if len(defined) else math.nan)
    return band, np.array(bf)


def test_files_with_boundary_metrics(tmp_path):
    rng = np.random.default_rng(4)
    pairs, preds, targets = [], [], []
    for i in range(7):
        shape = (9 + 3 * i, 14 - i)  # sizes differ: d and theta are per image
        t = _blocks(rng, shape, K)
        p = np.where(rng.random(shape) < 0.3, _blocks(rng, shape, K - 1, 2), np.maximum(t, 1) - 1).astype(np.uint8)
        pp, tp = tmp_path / f"p{i}.png", tmp_path / f"t{i}.png"
        Image.fromarray(p).save(pp)
        Image.fromarray(t).save(tp)
        pairs.append((pp, tp))
        preds.append(p)
        targets.append(t)
    cm = evaluate_files(pairs, K, reduce_zero_label=True, partition_size=2, split_every=2, boundary=0.1,
                        boundary_f1=0.05)
    band, bf = expected(preds, targets, 0.1, 0.05)
    assert band[:K, :K].trace() > 0 and not np.isnan(bf).all()
    np.testing.assert_array_equal(cm.boundary_matrix, band)
    m = cm.compute()
    np.testing.assert_allclose(m.boundary_f1, bf, rtol=1e-12, equal_nan=True)
    assert (cm.boundary, cm.boundary_f1) == (0.1, 0.05)
    # Region counts as without boundary metrics.
    np.testing.assert_array_equal(cm.matrix, evaluate_files(pairs, K, reduce_zero_label=True).matrix)


def test_arrays_split_inside_images_are_banded_whole():
    rng = np.random.default_rng(8)
    n, h, w = 6, 20, 18
    targets = np.stack([_blocks(rng, (h, w), K) for _ in range(n)])
    preds = np.stack([np.where(rng.random((h, w)) < 0.25, _blocks(rng, (h, w), K - 1, 2), np.maximum(t, 1) - 1)
                      for t in targets]).astype(np.uint8)
    # Chunks that cut every image in four: banding a block alone would see false edges.
    p = da.from_array(preds, chunks=(2, h // 2, w // 2))
    t = da.from_array(targets, chunks=(3, h, w // 3))
    cm = evaluate_arrays(p, t, K, reduce_zero_label=True, boundary=0.05, boundary_f1=0.02, split_every=2)
    band, bf = expected(list(preds), list(targets), 0.05, 0.02)
    np.testing.assert_array_equal(cm.boundary_matrix, band)
    np.testing.assert_allclose(cm.compute().boundary_f1, bf, rtol=1e-12, equal_nan=True)
    delayed = evaluate_arrays(p, t, K, reduce_zero_label=True, boundary=0.05, compute=False)
    np.testing.assert_array_equal(delayed.compute().boundary_matrix, band)


def test_empty_and_bad_boundary_settings():
    cm = evaluate_files([], K, boundary=0.02)
    assert cm.boundary == 0.02 and not cm.boundary_matrix.any()
    with pytest.raises(ValueError, match="boundary"):
        evaluate_files([], K, boundary=-1.0)
    with pytest.raises(ValueError, match="label maps"):
        evaluate_arrays(da.zeros(10, dtype=np.uint8), da.zeros(10, dtype=np.uint8), K, boundary=0.02)
