"""The BF score kernel (csrc/ade20k_metrics/bfscore.hpp) against the pure-NumPy reference, and the boundary
metrics' arithmetic in compute_metrics."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from labelgen import INT_DTYPES, fits, random_view

import ade20k_metrics as am
from ade20k_metrics.core import boundary as bd
from ade20k_metrics.core import boundary_reference as ref

RATIOS = [0.001, 0.0075, 0.02, 0.05, 0.1, 0.2, 0.5, 2.0]


def _map(rng, shape, k, kind):
    h, w = shape[-2:]
    if kind == "noise":
        return rng.integers(0, k, size=shape)
    out = np.full(shape, rng.integers(0, k))
    for _ in range(rng.integers(1, 5)):
        if kind == "thin" and h and w:
            if rng.random() < 0.5:
                out[..., rng.integers(0, h), :] = rng.integers(0, k)
            else:
                out[..., :, rng.integers(0, w)] = rng.integers(0, k)
        elif h and w:
            y0, x0 = rng.integers(0, h), rng.integers(0, w)
            out[..., y0:y0 + rng.integers(1, h + 1), x0:x0 + rng.integers(1, w + 1)] = rng.integers(0, k)
    return out


@st.composite
def cases(draw):
    k = draw(st.one_of(st.integers(1, 5), st.integers(1, 300)))
    tdt, pdt = draw(st.sampled_from(INT_DTYPES)), draw(st.sampled_from(INT_DTYPES))
    shape = draw(st.one_of(st.tuples(st.integers(1, 20), st.integers(1, 20)),
                           st.tuples(st.integers(1, 3), st.integers(1, 10), st.integers(1, 10)),
                           st.tuples(st.just(1), st.integers(1, 40)),
                           st.tuples(st.integers(2, 6), st.integers(60, 140))))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    hi_t, hi_p = min(k, int(np.iinfo(tdt).max) + 1), min(k, int(np.iinfo(pdt).max) + 1)
    target = _map(rng, shape, hi_t, draw(st.sampled_from(["noise", "thin", "blocks"])))
    if draw(st.booleans()):
        pred = np.where(rng.random(shape) < draw(st.sampled_from([0.0, 0.05, 0.3])),
                        rng.integers(0, hi_p, size=shape), np.minimum(target, hi_p - 1))
    else:
        pred = _map(rng, shape, hi_p, draw(st.sampled_from(["noise", "thin", "blocks"])))
    ignore = draw(st.sampled_from([None, 255, -1, 0]))
    if ignore is not None and fits(ignore, tdt):
        region = _map(rng, shape, 2, "blocks") == 1 if draw(st.booleans()) else rng.random(shape) < 0.1
        target = np.where(region, ignore, target)
        junk = [v for v in (k, 250, -3) if fits(v, pdt)]
        if junk and draw(st.booleans()):
            pred = np.where(region, rng.choice(junk), pred)
    return k, ignore, random_view(target.astype(tdt), rng), random_view(pred.astype(pdt), rng)


@given(cases(), st.sampled_from(RATIOS), st.integers(1, 4))
def test_matches_reference(case, ratio, n_threads):
    k, ignore, t, p = case
    per_image = ref.boundary_f1_per_image(p, t, k, boundary_f1=ratio, ignore_index=ignore)
    f1_sum, f1_count, image_sum, images = bd.count_bf(p, t, k, ignore, n_threads, None, ratio)
    np.testing.assert_array_equal(f1_count, (~np.isnan(per_image)).sum(axis=0))
    np.testing.assert_array_equal(f1_sum, np.nansum(per_image, axis=0))  # same arithmetic, same order
    scored = ~np.isnan(per_image).all(axis=1)
    assert images == int(scored.sum())
    with np.errstate(invalid="ignore"):
        means = [np.nanmean(row) for row in per_image[scored]]
    assert image_sum == pytest.approx(float(np.sum(means)), rel=1e-12, abs=1e-300)


@given(st.integers(2, 5), st.integers(0, 2**32 - 1), st.sampled_from(RATIOS))
def test_reduce_zero_label_matches_reference(k, seed, ratio):
    rng = np.random.default_rng(seed)
    t = _map(rng, (9, 12), k + 1, "blocks").astype(np.uint8)  # 0 = other, 1..k classes
    p = np.where(rng.random(t.shape) < 0.2, rng.integers(0, k, t.shape), np.maximum(t.astype(int) - 1, 0))
    cm = am.ConfusionMatrix(k, reduce_zero_label=True)
    per_image = ref.boundary_f1_per_image(p, t, k, boundary_f1=ratio, reduce_zero_label=True)
    f1_sum, f1_count, _, _ = bd.count_bf(p, t, k, 255, 2, cm._lookup(t.dtype), ratio)
    np.testing.assert_array_equal(f1_sum, np.nansum(per_image, axis=0))
    np.testing.assert_array_equal(f1_count, (~np.isnan(per_image)).sum(axis=0))


def test_threshold_is_strict_in_the_kernel_too():
    # 3 x 4 (diagonal 5): theta = 0.2 * 5 = 1 exactly; the GT contour column 2 is at distance 1 from the
    # predicted column 3, so it matches only when theta > 1 (see test_boundary_reference for the numbers).
    t = np.zeros((3, 4), np.uint8)
    t[:, 2:] = 1
    p = np.zeros((3, 4), np.uint8)
    p[:, 3:] = 1
    strict, _, _, _ = bd.count_bf(p, t, 2, 255, 1, None, 0.2)
    loose, _, _, _ = bd.count_bf(p, t, 2, 255, 1, None, 0.2001)
    assert strict[1] == pytest.approx(2 / 3, rel=1e-15) and loose[1] == 1.0


def test_large_map_threads_agree():
    rng = np.random.default_rng(5)
    t = _map(rng, (300, 333), 7, "blocks").astype(np.int32)
    p = np.where(rng.random(t.shape) < 0.01, 3, t).astype(np.uint16)
    results = [bd.count_bf(p, t, 7, 255, n, None, 0.0075) for n in (1, 2, 5)]
    for r in results[1:]:
        np.testing.assert_array_equal(r[0], results[0][0])
        np.testing.assert_array_equal(r[1], results[0][1])


# -- compute_metrics ------------------------------------------------------------------------------

def test_boundary_iou_under_each_convention():
    # K = 3, band counts: class 0 tp 6, its GT band 10 (row sum), its predicted band 8 (column sum);
    # class 1: tp 0, predicted only (column sum 4, row sum 0); class 2: absent from both bands.
    b = np.zeros((4, 4), np.int64)
    b[0, 0], b[0, 3], b[0, 1] = 6, 3, 1     # row 0 sums to 10
    b[3, 0], b[3, 1] = 2, 3                 # column 0: 6 + 2 = 8; column 1: 1 + 3 = 4
    b[3, 3] = 50
    region = np.diag([20, 5, 0]).astype(np.int64)
    region[1, 1] = 0
    region[0, 1] = 5
    iou0 = 6 / (10 + 8 - 6)
    mm = am.compute_metrics(region, boundary_matrix=b, warn_shift=False)
    np.testing.assert_allclose(mm.boundary_iou, [iou0, 0.0, np.nan], equal_nan=True)
    assert mm.mboundary_iou == pytest.approx(iou0 / 2)
    d2 = am.compute_metrics(region, convention="detectron2", boundary_matrix=b, warn_shift=False)
    assert d2.mboundary_iou == pytest.approx(iou0)           # class 1 has no GT band: left out
    cs = am.compute_metrics(region, convention="csail", boundary_matrix=b, warn_shift=False)
    assert cs.mboundary_iou == pytest.approx(iou0 / 3, rel=1e-9)
    tm = am.compute_metrics(region, convention="torchmetrics", boundary_matrix=b, warn_shift=False)
    assert tm.mboundary_iou == pytest.approx(iou0 / 2)
    np.testing.assert_array_equal(mm.boundary_matrix, b)
    # region metrics are the same with or without the boundary counts
    plain = am.compute_metrics(region, warn_shift=False)
    assert plain.boundary_iou is None and plain.mboundary_iou is None and plain.boundary_matrix is None
    np.testing.assert_array_equal(plain.iou, mm.iou)
    assert plain.miou == mm.miou


def test_boundary_f1_means_and_output():
    region = np.diag([3, 4, 0]).astype(np.int64)
    m = am.compute_metrics(region, boundary_f1=(np.array([1.5, 0.0, 0.0]), np.array([2, 1, 0])))
    np.testing.assert_allclose(m.boundary_f1, [0.75, 0.0, np.nan], equal_nan=True)
    assert m.mboundary_f1 == pytest.approx(0.375)
    d = m.to_dict()
    assert d["mboundary_f1"] == pytest.approx(0.375) and d["boundary_f1"][2] is None
    assert "mboundary_iou" not in d and "boundary_iou" not in d
    json.dumps(d)
    table = m.table()
    assert "BF" in table.splitlines()[0] and "BIoU" not in table.splitlines()[0]
    assert "mBF 0.3750" in table and "mBF 0.3750" in str(m)


def test_boundary_counts_are_checked():
    region = np.eye(2, dtype=np.int64)
    with pytest.raises(ValueError, match="shape"):
        am.compute_metrics(region, boundary_matrix=np.zeros((2, 2), np.int64))
    with pytest.raises(ValueError, match="negative"):
        am.compute_metrics(region, boundary_matrix=-np.ones((3, 3), np.int64))
    with pytest.raises(TypeError, match="pair"):
        am.compute_metrics(region, boundary_f1=np.zeros(2))
    with pytest.raises(ValueError, match=r"\[0, count\]"):
        am.compute_metrics(region, boundary_f1=(np.array([2.0, 0.0]), np.array([1, 0])))
    with pytest.raises(ValueError, match="shape"):
        am.compute_metrics(region, boundary_f1=(np.zeros(3), np.zeros(3, np.int64)))


def test_boundary_iou_of_an_empty_matrix_is_nan_everywhere():
    m = am.compute_metrics(np.zeros((2, 2), np.int64), convention="csail", boundary_matrix=np.zeros((3, 3), np.int64))
    assert math.isnan(m.mboundary_iou)
