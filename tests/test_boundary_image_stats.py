"""ImageStats(..., boundary=ratio): per-image Boundary IoU against the NumPy reference, image by image."""
from __future__ import annotations

import math
import pickle

import numpy as np
import pytest

import ade20k_metrics as am
from ade20k_metrics.core import boundary_reference as ref

K = 6


def _blocks(rng, shape, high, block=3):
    h, w = shape
    coarse = rng.integers(0, high + 1, size=(-(-h // block), -(-w // block)))
    return np.kron(coarse, np.ones((block, block), dtype=np.int64))[:h, :w]


def make_images(seed, n=6):
    """ADE-style targets (0 = other, 255 ignored) and predictions 0..K-1 of different sizes."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        shape = (7 + 5 * i, 20 - 2 * i)
        t = _blocks(rng, shape, K)
        t[rng.random(shape) < 0.05] = 255
        p = np.where(rng.random(shape) < 0.3, _blocks(rng, shape, K - 1, 2), np.clip(t, 1, K) - 1)
        out.append((p.astype(np.uint8), t.astype(np.uint8)))
    return out


def reference_iou(p, t, ratio):
    """(K,) Boundary IoU of one image from the reference band matrix (NaN where the union is 0)."""
    band = ref.boundary_matrix(p, t, K, dilation_ratio=ratio, reduce_zero_label=True)
    tp = np.diag(band)[:K].astype(np.float64)
    union = band[:K, :].sum(axis=1) + band[:, :K].sum(axis=0) - tp
    return np.array([tp[c] / union[c] if union[c] else math.nan for c in range(K)]), band


def test_per_image_boundary_iou_is_the_reference_of_each_image():
    images = make_images(1)
    stats = am.ImageStats(K, reduce_zero_label=True, boundary=0.05)
    for i, (p, t) in enumerate(images):
        stats.update(p, t, name=f"im{i}")
    got = stats.image_boundary_iou()
    assert got.shape == (len(images), K)
    total = np.zeros((K + 1, K + 1), np.int64)
    for i, (p, t) in enumerate(images):
        want, band = reference_iou(p, t, 0.05)
        total += band
        np.testing.assert_allclose(got[i], want, rtol=1e-12, equal_nan=True)
        kept = want[~np.isnan(want)]
        mean = stats.image_mboundary_iou()[i]
        assert math.isclose(mean, kept.sum() / len(kept), rel_tol=1e-12) if len(kept) else math.isnan(mean)
    assert not np.isnan(got).all()
    # The dataset figures are the pooled ones, as ConfusionMatrix(boundary=) counts them.
    m = stats.compute()
    np.testing.assert_array_equal(m.boundary_matrix, total)
    cm = am.ConfusionMatrix(K, reduce_zero_label=True, boundary=0.05)
    for p, t in images:
        cm.update(p, t)
    np.testing.assert_array_equal(stats.matrix, cm.matrix)
    np.testing.assert_allclose(m.boundary_iou, cm.compute().boundary_iou, rtol=0, equal_nan=True)


def test_merge_copy_batch_and_pickle_keep_the_band_records():
    images = make_images(2)
    a = am.ImageStats(K, reduce_zero_label=True, boundary=0.1)
    b = am.ImageStats(K, reduce_zero_label=True, boundary=0.1)
    whole = am.ImageStats(K, reduce_zero_label=True, boundary=0.1)
    for i, (p, t) in enumerate(images):
        (a if i < 3 else b).update(p, t, name=i)
        whole.update(p, t, name=i)
    merged = a + b
    assert merged == whole
    np.testing.assert_array_equal(merged.image_boundary_iou(), whole.image_boundary_iou())
    np.testing.assert_array_equal(merged.compute().boundary_matrix, whole.compute().boundary_matrix)
    assert pickle.loads(pickle.dumps(whole)) == whole
    assert whole.copy() == whole
    same = [(p, t) for p, t in images if p.shape == images[0][0].shape] * 2
    batch = am.ImageStats(K, reduce_zero_label=True, boundary=0.1).update_batch(
        np.stack([p for p, _ in same]), np.stack([t for _, t in same]))
    want = np.stack([reference_iou(p, t, 0.1)[0] for p, t in same])
    np.testing.assert_allclose(batch.image_boundary_iou(), want, rtol=1e-12, equal_nan=True)
    whole.reset()
    assert len(whole) == 0 and not whole.compute().boundary_matrix.any()


def test_bad_input_changes_nothing_and_unsupported_parts_say_so():
    (p, t), *_ = make_images(3)
    stats = am.ImageStats(K, reduce_zero_label=True, boundary=0.05).update(p, t)
    before = stats.copy()
    bad = p.copy()
    bad[0, 0] = K + 3
    with pytest.raises(ValueError):
        stats.update(bad, t)
    with pytest.raises(ValueError, match="one label map"):
        stats.update(np.stack([p, p]), np.stack([t, t]))
    assert stats == before
    with pytest.raises(ValueError, match="different settings"):
        stats + am.ImageStats(K, reduce_zero_label=True)
    with pytest.raises(ValueError, match="boundary="):
        am.ImageStats(K).image_boundary_iou()
    with pytest.raises(NotImplementedError, match="boundary"):
        stats.state_dict()
