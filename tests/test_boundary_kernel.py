"""The boundary kernel (csrc/ade20k_metrics/boundary.hpp) against the pure-NumPy reference and boundary-iou-api.

Every example is small (the reference looks at every offset of every window), so
the properties stay cheap at CI's 1,000 examples each.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from labelgen import INT_DTYPES, fits, random_view

import ade20k_metrics as am
from ade20k_metrics import reference
from ade20k_metrics.core import boundary as bd
from ade20k_metrics.core import boundary_reference as ref
from ade20k_metrics.core.boundary import boundary_options

# Kernel paths: default; many threads on tiny inputs; portable compares; AVX2 compares.
PATHS = {
    "default": {},
    "parallel": {"min_pixels_per_thread": 1},
    "portable": {"isa": 0, "min_pixels_per_thread": 1},
    "avx2": {"isa": 1},
}
RATIOS = [0.001, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 1.0, 5.0]


def _layout(rng, kind: str, shape, k: int) -> np.ndarray:
    """int64 classes in [0, k) of one of several kinds of map."""
    h, w = shape[-2:]
    if kind == "noise":
        return rng.integers(0, k, size=shape)
    if kind == "single":
        return np.full(shape, rng.integers(0, k))
    if kind == "thin":  # one-pixel lines of other classes across a background
        out = np.full(shape, rng.integers(0, k))
        for _ in range(rng.integers(1, 4)):
            if h and rng.random() < 0.5:
                out[..., rng.integers(0, h), :] = rng.integers(0, k)
            elif w:
                out[..., :, rng.integers(0, w)] = rng.integers(0, k)
        if h and w and rng.random() < 0.5:
            out[..., rng.integers(0, h), rng.integers(0, w)] = rng.integers(0, k)
        return out
    # blocks: rectangles of classes, as real maps are
    out = np.full(shape, rng.integers(0, k))
    for _ in range(rng.integers(1, 6)):
        if not (h and w):
            break
        y0, x0 = rng.integers(0, h), rng.integers(0, w)
        out[..., y0:y0 + rng.integers(1, h + 1), x0:x0 + rng.integers(1, w + 1)] = rng.integers(0, k)
    return out


shapes = st.one_of(
    st.tuples(st.integers(1, 24), st.integers(1, 24)),
    st.tuples(st.integers(1, 3), st.integers(1, 12), st.integers(1, 12)),
    st.tuples(st.just(1), st.integers(1, 70)),
    st.tuples(st.integers(1, 70), st.just(1)),
    st.tuples(st.integers(0, 2), st.integers(0, 5), st.integers(0, 5)),
    st.tuples(st.integers(3, 12), st.integers(60, 200)),   # rows of several 64-pixel words
)


@st.composite
def cases(draw):
    k = draw(st.one_of(st.integers(1, 6), st.integers(1, 300)))
    tdt, pdt = draw(st.sampled_from(INT_DTYPES)), draw(st.sampled_from(INT_DTYPES))
    shape = draw(shapes)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    hi_t = min(k, int(np.iinfo(tdt).max) + 1)
    hi_p = min(k, int(np.iinfo(pdt).max) + 1)
    target = _layout(rng, draw(st.sampled_from(["noise", "single", "thin", "blocks"])), shape, hi_t)
    # The prediction: the target with errors, or a map of its own.
    if draw(st.booleans()):
        pred = np.minimum(target, hi_p - 1)
        flip = rng.random(shape) < draw(st.sampled_from([0.0, 0.05, 0.3]))
        pred = np.where(flip, rng.integers(0, hi_p, size=shape), pred)
    else:
        pred = _layout(rng, draw(st.sampled_from(["noise", "single", "thin", "blocks"])), shape, hi_p)
    ignore = draw(st.sampled_from([None, 255, -1, 0, k, 65535]))
    if ignore is not None and fits(ignore, tdt):
        region = _layout(rng, "blocks", shape, 2) == 1 if draw(st.booleans()) else rng.random(shape) < 0.1
        target = np.where(region, ignore, target)
        # Predictions where the target is ignored may be anything, even no class.
        junk = [v for v in (k, 250, -3, 2**40) if fits(v, pdt)]
        if junk and draw(st.booleans()):
            pred = np.where(region & (rng.random(shape) < 0.5), rng.choice(junk), pred)
    t = random_view(np.asarray(target).astype(tdt), rng)
    p = random_view(np.asarray(pred).astype(pdt), rng)
    return k, ignore, t, p


@given(cases(), st.sampled_from(RATIOS), st.sampled_from(sorted(PATHS)), st.integers(1, 4))
def test_matches_reference(case, ratio, path, n_threads):
    k, ignore, t, p = case
    expected = ref.boundary_matrix(p, t, k, dilation_ratio=ratio, ignore_index=ignore)
    expected_region = reference.confusion_matrix(p, t, k, ignore_index=ignore)
    out = np.zeros((k, k), np.int64)
    band = np.zeros((k + 1, k + 1), np.int64)
    with boundary_options(**PATHS[path]):
        bd.count_boundary(p, t, out, band, k, ignore, n_threads, None, ratio)
    np.testing.assert_array_equal(band, expected)
    np.testing.assert_array_equal(out, expected_region)


@st.composite
def mapped_cases(draw):
    """Targets in the ADE20K format (0 = other) and label_maps, some of which merge labels."""
    k = draw(st.integers(1, 6))
    tdt = draw(st.sampled_from(INT_DTYPES))
    shape = draw(st.tuples(st.integers(1, 16), st.integers(1, 16)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    reduce = draw(st.booleans())
    raw_hi = k + 1 if reduce else k
    target = _layout(rng, draw(st.sampled_from(["noise", "thin", "blocks"])), shape, min(raw_hi + 2, 120))
    label_map = draw(st.one_of(st.none(), st.dictionaries(st.integers(0, k + 2), st.integers(0, k - 1), max_size=4)))
    ignore = draw(st.sampled_from([None, 255]))
    rows = reference.target_rows(target, k, ignore, reduce, label_map)
    # Keep the labels that are classes or ignored after the mapping; the rest become ignored or class 0.
    filler = 0 if reduce else (ignore if ignore is not None else None)
    if filler is None:
        target = np.where(rows == reference.INVALID, [v for v in range(200) if reference.target_rows(
            np.array([v]), k, ignore, reduce, label_map)[0] >= 0][0], target)
    else:
        target = np.where(rows == reference.INVALID, filler, target)
    target = target.astype(tdt) if all(fits(int(v), tdt) for v in np.unique(target)) else target.astype(np.int64)
    rows = reference.target_rows(target, k, ignore, reduce, label_map)
    pred = np.where(rows >= 0, rows, 0)
    flip = rng.random(shape) < 0.2
    pred = np.where(flip, rng.integers(0, k, size=shape), pred).astype(draw(st.sampled_from(INT_DTYPES)))
    return k, ignore, reduce, label_map, random_view(target, rng), random_view(pred, rng)


@given(mapped_cases(), st.sampled_from(RATIOS), st.sampled_from(sorted(PATHS)), st.integers(1, 3))
def test_reduce_zero_label_and_label_map_match_reference(case, ratio, path, n_threads):
    k, ignore, reduce, label_map, t, p = case
    cm = am.ConfusionMatrix(k, ignore_index=ignore, reduce_zero_label=reduce, label_map=label_map)
    expected = ref.boundary_matrix(p, t, k, dilation_ratio=ratio, ignore_index=ignore, reduce_zero_label=reduce,
                                   label_map=label_map)
    out = np.zeros((k, k), np.int64)
    band = np.zeros((k + 1, k + 1), np.int64)
    with boundary_options(**PATHS[path]):
        bd.count_boundary(p, t, out, band, k, ignore, n_threads, cm._lookup(t.dtype), ratio)
    np.testing.assert_array_equal(band, expected)
    np.testing.assert_array_equal(out, reference.confusion_matrix(p, t, k, ignore_index=ignore,
                                                                  reduce_zero_label=reduce, label_map=label_map))


def test_label_map_that_merges_labels_bands_the_merged_class():
    # Raw 1 and 2 both become class 1: the seam between them is no boundary.
    t = np.zeros((9, 12), np.uint8)
    t[:, 4:8] = 1
    t[:, 8:] = 2
    cm = am.ConfusionMatrix(2, label_map={2: 1})
    out = np.zeros((2, 2), np.int64)
    band = np.zeros((3, 3), np.int64)
    merged = np.where(t == 2, 1, t)
    bd.count_boundary(merged, t, out, band, 2, 255, 1, cm._lookup(t.dtype), 1e-9)
    np.testing.assert_array_equal(band, ref.boundary_matrix(merged, merged, 2, dilation_ratio=1e-9))
    # Had the raw labels decided the bands, the seam between raw 1 and raw 2 would be band too.
    raw_band = int((ref.inner_band(t, 1) & (merged == 1)).sum())
    assert band[1, 1] == int((ref.inner_band(merged, 1) & (merged == 1)).sum()) < raw_band


@given(st.integers(1, 30), st.integers(1, 30), st.integers(0, 2**32 - 1), st.sampled_from(RATIOS))
def test_kernel_is_boundary_iou_api_on_binary_masks(h, w, seed, ratio):
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(seed)

    def mask():
        return (_layout(rng, str(rng.choice(["noise", "thin", "blocks", "single"])), (h, w), 2) == 1).astype(np.uint8)

    def api_boundary(m):  # boundary-iou-api's mask_to_boundary, run with OpenCV
        d = max(1, int(round(ratio * np.sqrt(h ** 2 + w ** 2))))
        padded = cv2.copyMakeBorder(m, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
        return m - cv2.erode(padded, np.ones((3, 3), np.uint8), iterations=d)[1:h + 1, 1:w + 1]

    gt, dt = mask(), mask()
    got = am.boundary_iou(dt, gt, 2, dilation_ratio=ratio, ignore_index=None)
    for c, (g, p) in enumerate([(1 - gt, 1 - dt), (gt, dt)]):
        gb, pb = api_boundary(g.astype(np.uint8)), api_boundary(p.astype(np.uint8))
        union = ((gb + pb) > 0).sum()
        expected = np.nan if union == 0 else ((gb * pb) > 0).sum() / union
        np.testing.assert_array_equal(got[c], expected)


@pytest.mark.parametrize("d", [1, 2, 3, 5])
def test_runs_across_word_boundaries(d):
    # Runs of length 2d - 1 .. 2d + 2 (the shortest that have an interior is 2d + 1) at every position
    # around the 64-bit words of a row, in maps just tall enough for an interior row.
    h, w = 2 * d + 3, 200
    ratio = (d - 0.4) / np.sqrt(h * h + w * w)  # rounds to d
    assert ref.dilation_pixels(h, w, ratio) == d
    for length in range(2 * d - 1, 2 * d + 3):
        for start in list(range(40, 90)) + list(range(115, 140)):
            t = np.zeros((h, w), np.uint8)
            t[:, start:start + length] = 1
            p = np.zeros((h, w), np.uint8)
            p[1:, start - 1:start - 1 + length] = 1
            expected = ref.boundary_matrix(p, t, 2, dilation_ratio=ratio)
            band = np.zeros((3, 3), np.int64)
            bd.count_boundary(p, t, np.zeros((2, 2), np.int64), band, 2, 255, 1, None, ratio)
            np.testing.assert_array_equal(band, expected, err_msg=f"length {length} start {start}")


def test_boundary_iou_by_hand():
    # 20 x 20 (diagonal 28.28; ratio 0.05 -> d = round(1.414) = 1); class 1 is a 10 x 10 square,
    # predicted one column to the right.
    t = np.zeros((20, 20), np.uint8)
    t[5:15, 5:15] = 1
    p = np.zeros((20, 20), np.uint8)
    p[5:15, 6:16] = 1
    iou = am.boundary_iou(p, t, 2, dilation_ratio=0.05)
    # Class 1's band (d = 1) is each square's ring of 36 pixels: G's at columns 5 and 14, P's at columns 6
    # and 15, both at rows 5 and 14.  They share rows 5 and 14 at columns 6..14: 18 pixels, of a union of 54.
    g_ring = ref.inner_band(t, 1) & (t == 1)
    p_ring = ref.inner_band(p, 1) & (p == 1)
    assert g_ring.sum() == 36 and p_ring.sum() == 36 and (g_ring & p_ring).sum() == 18
    assert iou[1] == pytest.approx(18 / 54, rel=1e-15)


@pytest.mark.parametrize("dtype", INT_DTYPES)
def test_every_dtype_single_image(dtype):
    rng = np.random.default_rng(7)
    t = _layout(rng, "blocks", (40, 50), 5).astype(dtype)
    p = np.where(rng.random((40, 50)) < 0.1, 3, t).astype(dtype)
    np.testing.assert_array_equal(am.boundary_iou(p, t, 5, ignore_index=None),
                                  ref.boundary_iou(p, t, 5, ignore_index=None))


def test_invalid_labels_raise_and_add_nothing():
    t = np.zeros((8, 8), np.uint8)
    p = np.zeros((8, 8), np.uint8)
    out = np.ones((3, 3), np.int64)
    band = np.ones((4, 4), np.int64)
    t[3, 3] = 7
    with pytest.raises(ValueError, match="target has 1 label"):
        bd.count_boundary(p, t, out, band, 3, 255, 1, None, 0.02)
    t[3, 3] = 0
    p[0, 0] = 9
    with pytest.raises(ValueError, match="pred has 1 label"):
        bd.count_boundary(p, t, out, band, 3, 255, 2, None, 0.02)
    assert (out == 1).all() and (band == 1).all()
    t[0, 0] = 255  # an invalid prediction where the target is ignored is fine
    bd.count_boundary(p, t, out, band, 3, 255, 2, None, 0.02)
    assert out.sum() == 9 + 63 and band.sum() == 16 + 63


def test_maps_need_two_dimensions():
    with pytest.raises(ValueError, match="at least 2|label maps"):
        am.boundary_iou(np.zeros(5, np.uint8), np.zeros(5, np.uint8), 2)
    with pytest.raises(ValueError, match="same shape"):
        am.boundary_iou(np.zeros((2, 5), np.uint8), np.zeros((5, 2), np.uint8), 2)
    with pytest.raises(TypeError, match="dilation_ratio"):
        am.boundary_iou(np.zeros((2, 5), np.uint8), np.zeros((2, 5), np.uint8), 2, dilation_ratio="0.02")
    with pytest.raises(ValueError, match="dilation_ratio"):
        am.boundary_iou(np.zeros((2, 5), np.uint8), np.zeros((2, 5), np.uint8), 2, dilation_ratio=0.0)


def test_batch_bands_each_image_alone():
    rng = np.random.default_rng(3)
    t = _layout(rng, "blocks", (4, 30, 20), 4).astype(np.uint8)
    p = _layout(rng, "blocks", (4, 30, 20), 4).astype(np.uint8)
    whole = np.zeros((5, 5), np.int64)
    bd.count_boundary(p, t, np.zeros((4, 4), np.int64), whole, 4, 255, 3, None, 0.05)
    parts = np.zeros((5, 5), np.int64)
    for i in range(4):
        bd.count_boundary(p[i], t[i], np.zeros((4, 4), np.int64), parts, 4, 255, 1, None, 0.05)
    np.testing.assert_array_equal(whole, parts)
    # Stacked as one tall image instead, the seams between images would not be borders.
    tall = np.zeros((5, 5), np.int64)
    bd.count_boundary(p.reshape(120, 20), t.reshape(120, 20), np.zeros((4, 4), np.int64), tall, 4, 255, 1, None,
                      0.05)
    assert not np.array_equal(tall, whole)


def test_large_image_many_threads_matches_one_thread():
    rng = np.random.default_rng(11)
    t = _layout(rng, "blocks", (300, 257), 9).astype(np.int16)
    p = np.where(rng.random(t.shape) < 0.02, 4, t).astype(np.int32)
    results = []
    for threads in (1, 2, 4, 7):
        band = np.zeros((10, 10), np.int64)
        with boundary_options(min_pixels_per_thread=1):
            bd.count_boundary(p, t, np.zeros((9, 9), np.int64), band, 9, 255, threads, None, 0.02)
        results.append(band)
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])
    assert results[0][:9].sum() > 0
