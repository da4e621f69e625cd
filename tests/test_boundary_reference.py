"""The pure-NumPy boundary reference (core/boundary_reference.py) against hand-made cases and against
boundary-iou-api's own rule (OpenCV erosion of each class's mask; skipped without cv2)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ade20k_metrics.core import boundary_reference as ref


# -- the band width d ------------------------------------------------------

def test_dilation_rounds_half_to_even_as_design_says():
    # 75 x 100: diagonal 125, 0.02 * 125 = 2.5 -> 2 (half to even), as DESIGN.md says.
    assert ref.dilation_pixels(75, 100, 0.02) == 2
    # 0.02 * 125 * 1.5 = 3.75 -> 4; 0.028 * 125 = 3.5 -> 4 (even).
    assert ref.dilation_pixels(75, 100, 0.03) == 4
    assert ref.dilation_pixels(75, 100, 0.028) == 4
    # never below 1
    assert ref.dilation_pixels(1, 1, 0.02) == 1
    assert ref.dilation_pixels(3, 4, 1e-9) == 1
    # ADE20K-like 512 x 683: 0.02 * 853.6 = 17.07 -> 17
    assert ref.dilation_pixels(512, 683, 0.02) == 17


@given(st.integers(1, 3000), st.integers(1, 3000), st.floats(1e-4, 0.5))
def test_dilation_is_boundary_iou_apis_formula(h, w, ratio):
    # boundary-iou-api: img_diag = np.sqrt(h ** 2 + w ** 2); int(round(dilation_ratio * img_diag)); at least 1.
    expected = int(round(ratio * np.sqrt(h ** 2 + w ** 2)))
    assert ref.dilation_pixels(h, w, ratio) == max(1, expected)


# -- bands by hand ---------------------------------------------------------

def test_inner_band_by_hand():
    # A 7 x 9 map: class 1 everywhere, a 3 x 3 block of class 2 in the middle.
    labels = np.ones((7, 9), dtype=np.uint8)
    labels[2:5, 3:6] = 2
    band = ref.inner_band(labels, 1)
    expected = np.zeros((7, 9), dtype=bool)
    expected[0, :] = expected[-1, :] = True          # the outside bounds every border pixel
    expected[:, 0] = expected[:, -1] = True
    expected[1:6, 2:7] = True                         # class 1 within 1 of the block, and the block's ring
    expected[3, 4] = False                            # the block's centre sees only class 2
    assert np.array_equal(band, expected)
    # d = 2: rows/columns 0..1 from each border, and everything within 2 of the block.
    band2 = ref.inner_band(labels, 2)
    expected2 = np.ones((7, 9), dtype=bool)
    assert np.array_equal(band2, expected2)  # 2d + 1 = 5 <= 7 but every pixel is within 2 of a border or the block


def test_inner_band_border_rule():
    labels = np.zeros((10, 12), dtype=np.int32)
    for d in (1, 2, 3, 4):
        band = ref.inner_band(labels, d)
        expected = np.ones((10, 12), dtype=bool)
        expected[d:10 - d, d:12 - d] = False
        assert np.array_equal(band, expected), d


def test_inner_band_d_larger_than_the_image_and_1xn():
    assert ref.inner_band(np.zeros((3, 3), np.uint8), 1).sum() == 8      # only the centre is interior
    assert ref.inner_band(np.zeros((3, 3), np.uint8), 2).all()
    assert ref.inner_band(np.zeros((1, 50), np.uint8), 1).all()           # one row: everything touches the outside
    assert ref.inner_band(np.zeros((50, 1), np.uint8), 7).all()
    assert ref.inner_band(np.zeros((0, 5), np.uint8), 1).shape == (0, 5)


def test_boundary_matrix_by_hand_with_ignore():
    # 5 x 5, d = 1 (ratio small).  Target: class 0 left, class 1 right (columns 3, 4), one ignored pixel.
    t = np.zeros((5, 5), dtype=np.uint8)
    t[:, 3:] = 1
    t[2, 1] = 255
    p = t.copy()
    p[2, 1] = 1  # the prediction there is class 1 (not counted: target ignored)
    b = ref.boundary_matrix(p, t, 2, dilation_ratio=1e-6)
    # GT band of 0: every class-0 pixel is on the border, next to class 1 or next to the ignored pixel
    # -> all 14 class-0 pixels (15 minus the ignored one).  GT band of 1: all 10 (two columns on the border side).
    assert b[:2, :].sum(axis=1).tolist() == [14, 10]
    assert b[2, :].sum() == 0
    # Prediction: class-0 pixels all band (border, or next to the stray 1), class 1 all band.
    assert b[0, 0] == 14 and b[1, 1] == 10
    assert b.sum() == 24  # the ignored pixel is never counted


# -- against boundary-iou-api's rule on binary masks (OpenCV) --------------

def _api_mask_to_boundary(mask: np.ndarray, dilation_ratio: float) -> np.ndarray:
    """boundary-iou-api's mask_to_boundary rule (boundary_iou/utils/boundary_utils.py), with OpenCV:
    pad one pixel of 0, erode with a 3 x 3 kernel d times, keep mask minus the erosion."""
    cv2 = pytest.importorskip("cv2")
    h, w = mask.shape
    d = max(1, int(round(dilation_ratio * np.sqrt(h ** 2 + w ** 2))))
    padded = cv2.copyMakeBorder(mask, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    eroded = cv2.erode(padded, np.ones((3, 3), dtype=np.uint8), iterations=d)[1:h + 1, 1:w + 1]
    return mask - eroded


def _api_boundary_iou(gt: np.ndarray, dt: np.ndarray, dilation_ratio: float) -> float:
    g = _api_mask_to_boundary(gt, dilation_ratio)
    p = _api_mask_to_boundary(dt, dilation_ratio)
    inter = ((g * p) > 0).sum()
    union = ((g + p) > 0).sum()
    return float("nan") if union == 0 else inter / union


binary_maps = st.tuples(st.integers(1, 24), st.integers(1, 24), st.integers(0, 2**32 - 1),
                        st.sampled_from([0.001, 0.02, 0.05, 0.1, 0.2, 0.5, 2.0]))


def _blobs(rng, h, w) -> np.ndarray:
    kind = rng.integers(0, 4)
    if kind == 0:
        return (rng.random((h, w)) < 0.5).astype(np.uint8)
    if kind == 1:  # thin one-pixel lines
        m = np.zeros((h, w), np.uint8)
        m[rng.integers(0, h), :] = 1
        m[:, rng.integers(0, w)] = 1
        return m
    if kind == 2:
        return np.full((h, w), rng.integers(0, 2), np.uint8)
    m = np.zeros((h, w), np.uint8)
    for _ in range(rng.integers(1, 4)):
        y0, x0 = rng.integers(0, h), rng.integers(0, w)
        m[y0:y0 + rng.integers(1, h + 1), x0:x0 + rng.integers(1, w + 1)] = 1
    return m


@given(binary_maps)
def test_band_is_mask_to_boundary_on_binary_masks(case):
    h, w, seed, ratio = case
    rng = np.random.default_rng(seed)
    mask = _blobs(rng, h, w)
    d = ref.dilation_pixels(h, w, ratio)
    expected = _api_mask_to_boundary(mask, ratio).astype(bool)
    got = ref.inner_band(mask, d) & (mask == 1)
    assert np.array_equal(got, expected)
    # and the band of class 0 is the boundary of the complement
    expected0 = _api_mask_to_boundary((1 - mask).astype(np.uint8), ratio).astype(bool)
    assert np.array_equal(ref.inner_band(mask, d) & (mask == 0), expected0)


@given(binary_maps)
def test_boundary_iou_is_the_apis_on_binary_masks(case):
    h, w, seed, ratio = case
    rng = np.random.default_rng(seed)
    gt, dt = _blobs(rng, h, w), _blobs(rng, h, w)
    got = ref.boundary_iou(dt, gt, 2, dilation_ratio=ratio, ignore_index=None)
    expected = [_api_boundary_iou((1 - gt).astype(np.uint8), (1 - dt).astype(np.uint8), ratio),
                _api_boundary_iou(gt, dt, ratio)]
    np.testing.assert_array_equal(got, np.array(expected))


def test_api_rule_d_larger_than_the_image():
    pytest.importorskip("cv2")
    mask = np.ones((4, 6), np.uint8)
    assert _api_mask_to_boundary(mask, 3.0).all()           # d = 22: everything is boundary
    assert ref.inner_band(mask, ref.dilation_pixels(4, 6, 3.0)).all()
    row = np.array([[0, 1, 1, 1, 1, 0, 1]], np.uint8)
    assert np.array_equal(_api_mask_to_boundary(row, 0.02), row)
    assert np.array_equal(ref.inner_band(row, 1) & (row == 1), row.astype(bool))


# -- BF score by hand --------------------------------------------------------

def test_contours_are_4_neighbour():
    labels = np.zeros((5, 5), np.uint8)
    labels[1:4, 1:4] = 1
    c = ref.contours(labels)
    expected = np.ones((5, 5), bool)
    expected[2, 2] = False                  # the centre of the 3 x 3 block has 4 neighbours of class 1
    expected[1, 1] = expected[1, 3] = expected[3, 1] = expected[3, 3] = True
    # class-0 pixels: the ring is on the border; none inside
    assert np.array_equal(c, expected)
    # diagonal neighbours do not make a contour pixel
    labels = np.zeros((5, 5), np.uint8)
    labels[0, 0] = 1
    c = ref.contours(labels)
    assert not c[1, 1] and c[0, 1] and c[1, 0]


def test_bf_score_by_hand():
    # 10 x 10, theta = 0.12 * 14.14 = 1.70 (distances 1 and sqrt 2 match, 2 does not).
    # Target: class 1 in columns 5..9; prediction: class 1 in columns 7..9.
    t = np.zeros((10, 10), np.uint8)
    t[:, 5:] = 1
    p = np.zeros((10, 10), np.uint8)
    p[:, 7:] = 1
    f = ref.boundary_f1_per_image(p, t, 2, boundary_f1=0.12)[0]
    # Class 1.  GT contour: column 5, column 9, rows 0/9 at columns 6..8 = 26 pixels.  Predicted contour:
    # column 7, column 9, rows 0/9 at column 8 = 22.  Matched predicted pixels: column 9 (10), (0|9, 8) (2),
    # (0|9, 7) on the GT rows (2), (1, 7) and (8, 7) at distance 1 (2) = 16 of 22.  Matched GT pixels:
    # column 9 (10), rows 0/9 at columns 6..8 (6), none of column 5 (distance 2) = 16 of 26.
    # F1 = 2 * 16 / (22 + 26) = 2/3.
    # Class 0.  GT contour: column 0, column 4, rows 0/9 at columns 1..3 = 26.  Predicted: column 0, column 6,
    # rows 0/9 at columns 1..5 = 30.  Matched predicted: column 0 (10), rows 0/9 at columns 1..5 (10) = 20.
    # Matched GT: column 0 (10), rows 0/9 at columns 1..3 (6), (0|1|8|9, 4) (4) = 20.  F1 = 40 / 56 = 5/7.
    assert f[0] == pytest.approx(5 / 7, rel=1e-14)
    assert f[1] == pytest.approx(2 / 3, rel=1e-14)


def test_bf_score_empty_and_strict_threshold():
    t = np.zeros((4, 4), np.uint8)
    p = np.zeros((4, 4), np.uint8)
    p[0, 0] = 2
    f = ref.boundary_f1_per_image(p, t, 3, boundary_f1=0.01)[0]   # theta 0.057: only distance 0 matches
    assert np.isnan(f[1])     # neither map has class 1
    assert f[2] == 0.0        # predicted only: its contour is non-empty, the target's is empty
    # Class 0: GT contour = the 12 border pixels; predicted = the 11 border pixels other than (0, 0)
    # (the inner pixels' 4-neighbours are all 0).  P = 11/11, R = 11/12, F1 = 22/23.
    assert f[0] == pytest.approx(22 / 23, rel=1e-14)
    # Strict "< theta": 3 x 4 (diagonal 5), target class 1 in columns 2..3, prediction in column 3.
    t = np.zeros((3, 4), np.uint8)
    t[:, 2:] = 1
    p = np.zeros((3, 4), np.uint8)
    p[:, 3:] = 1
    assert ref.f1_theta(3, 4, 0.2) == 1.0
    f_strict = ref.boundary_f1_per_image(p, t, 2, boundary_f1=0.2)[0]     # theta == 1: column 2 unmatched
    f_loose = ref.boundary_f1_per_image(p, t, 2, boundary_f1=0.2001)[0]   # theta just above 1
    assert f_strict[1] == pytest.approx(2 / 3, rel=1e-14)                 # P = 3/3, R = 3/6
    assert f_loose[1] == 1.0


def test_bf_ignored_prediction_contours_are_not_counted():
    t = np.zeros((6, 6), np.uint8)
    t[:, 3:] = 255                        # right half ignored
    p = np.zeros((6, 6), np.uint8)
    p[:, 4:] = 1                          # class 1 predicted only where the target is ignored
    f = ref.boundary_f1_per_image(p, t, 2, boundary_f1=0.05)[0]
    assert np.isnan(f[1])                 # its contour is never counted
    # class 0: the GT contour includes column 2 (next to the ignored region)
    assert f[0] < 1.0
