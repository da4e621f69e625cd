"""Options the peers have (issue 13, item 2): include_background for per-image mIoU, float64 logits.

include_background follows torchmetrics' segmentation.MeanIoU (1.9): the first
class's channel is dropped after one-hot encoding, so class 0 leaves the mean
while its pixels stay false positives / negatives of the classes predicted or
labelled there.  float64 scores are held against numpy's argmax in float64.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ade20k_metrics as am
from ade20k_metrics import ImageStats, reference
from ade20k_metrics.core import logits as logits_module

# -- include_background ---------------------------------------------------------------------------

IMAGES = [  # (pred, target) of three 1-d images, 3 classes
    (np.array([0, 0, 1, 2]), np.array([0, 1, 1, 2])),
    (np.array([0, 0, 0, 0]), np.array([0, 0, 0, 0])),
    (np.array([1, 2, 0, 0]), np.array([1, 1, 2, 2])),
]


def _stats():
    s = ImageStats(3)
    for p, t in IMAGES:
        s.update(p, t)
    return s


def test_include_background_by_hand():
    s = _stats()
    # Image 1: IoU 0 = 1/2, 1 = 1/2, 2 = 1; image 2: IoU 0 = 1; image 3: IoU 0 = 0/2, 1 = 1/2, 2 = 0/3.
    np.testing.assert_allclose(s.image_miou(), [(0.5 + 0.5 + 1) / 3, 1, (0 + 0.5 + 0) / 3])
    np.testing.assert_allclose(s.image_miou(include_background=False), [(0.5 + 1) / 2, np.nan, 0.25])
    assert s.mean_image_miou(include_background=False) == pytest.approx((0.75 + 0.25) / 2)
    assert s.torchmetrics_segmentation_miou(include_background=False) == pytest.approx((0.5 + 1 + 0.5 + 0) / 4)
    np.testing.assert_allclose(s.torchmetrics_segmentation_miou(per_class=True, include_background=False),
                               [0.5, 0.5])
    with pytest.raises(TypeError, match="include_background"):
        s.image_miou(include_background=1)


@pytest.mark.parametrize("seed", range(4))
def test_include_background_matches_torchmetrics_mean_iou(seed):
    torch = pytest.importorskip("torch")
    segmentation = pytest.importorskip("torchmetrics.segmentation")
    functional = pytest.importorskip("torchmetrics.functional.segmentation")
    rng = np.random.default_rng(seed)
    k, n = int(rng.integers(2, 7)), int(rng.integers(1, 6))
    target = np.stack([rng.choice(rng.choice(k, size=2), size=(5, 6)) for _ in range(n)])
    pred = np.where(rng.random(target.shape) < 0.6, target, rng.integers(0, k, target.shape))
    s = ImageStats(k).update_batch(pred, target)
    p, t = torch.from_numpy(pred), torch.from_numpy(target)
    pooled = segmentation.MeanIoU(num_classes=k, include_background=False, input_format="index")
    pooled.update(p, t)
    ours = s.torchmetrics_segmentation_miou(include_background=False)
    theirs = float(pooled.compute())
    assert (np.isnan(ours) and np.isnan(theirs)) or ours == pytest.approx(theirs, rel=1e-5)
    per_class = segmentation.MeanIoU(num_classes=k, include_background=False, per_class=True, input_format="index")
    per_class.update(p, t)
    np.testing.assert_allclose(
        np.nan_to_num(s.torchmetrics_segmentation_miou(per_class=True, include_background=False), nan=-1.0),
        per_class.compute().numpy(), rtol=1e-5)
    per_sample = functional.mean_iou(p, t, num_classes=k, include_background=False, input_format="index").numpy()
    np.testing.assert_allclose(s.image_miou(include_background=False), per_sample, rtol=1e-5)


# -- float64 logits -------------------------------------------------------------------------------

def _expected(scores, target, k, axis, **settings_):
    return reference.confusion_matrix(np.argmax(scores, axis=axis), target, k, **settings_)


def test_float64_scores_that_float32_would_tie():
    # 1 + 1e-12 and 1 round to the same float32: float64's argmax is class 1, float32's class 0.
    scores = np.array([[[1.0]], [[1.0 + 1e-12]], [[0.0]]])
    cm = am.ConfusionMatrix(3).update_logits(scores, np.array([[1]], np.uint8))
    assert cm.matrix[1, 1] == 1 and cm.total == 1


@settings(deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 3), st.integers(1, 6), st.booleans(), st.booleans())
def test_property_float64_against_numpy_argmax(seed, n, k, reduce, ties):
    rng = np.random.default_rng(seed)
    h, w = int(rng.integers(1, 9)), int(rng.integers(1, 9))
    scores = rng.normal(size=(n, k, h, w))
    if ties:
        scores = np.round(scores)  # many exact ties: the lowest class wins in numpy
        scores[rng.random(scores.shape) < 0.05] = np.nan  # the first NaN wins in numpy
    target = rng.integers(0, k + 1 if reduce else k, size=(n, h, w)).astype(np.uint8)
    cm = am.ConfusionMatrix(k, reduce_zero_label=reduce)
    with logits_module_slab(int(rng.integers(1, 40))):  # slabs of a few pixels: every cut is exercised
        cm.update_logits(scores, target)
    np.testing.assert_array_equal(cm.matrix, _expected(scores, target, k, 1, reduce_zero_label=reduce))


class logits_module_slab:
    """Temporarily make float64 slabs hold at most ``scores`` scores (tests only)."""

    def __init__(self, scores: int):
        self.scores = scores

    def __enter__(self):
        self.saved = logits_module._FLOAT64_SLAB_SCORES
        logits_module._FLOAT64_SLAB_SCORES = self.scores

    def __exit__(self, *exc):
        logits_module._FLOAT64_SLAB_SCORES = self.saved


def test_float64_other_axes_strides_and_torch():
    rng = np.random.default_rng(1)
    scores = rng.normal(size=(4, 5, 6, 2))  # classes on axis 1, target (4, 6, 2)
    target = rng.integers(0, 5, size=(4, 6, 2))
    for axis, s, t in [(1, scores, target), (-1, np.moveaxis(scores, 1, -1), target),
                       (0, scores[0], target[0]), (1, scores[:, :, ::-2], target[:, ::-2])]:
        got = am.ConfusionMatrix(5).update_logits(s, t, axis=axis).matrix
        np.testing.assert_array_equal(got, _expected(s, t, 5, axis))
    torch = pytest.importorskip("torch")
    x = torch.from_numpy(rng.normal(size=(2, 3, 4, 4)))
    t = torch.from_numpy(rng.integers(0, 3, size=(2, 4, 4)))
    np.testing.assert_array_equal(am.ConfusionMatrix(3).update_logits(x, t).matrix,
                                  _expected(x.numpy(), t.numpy(), 3, 1))


def test_float64_bad_target_adds_nothing_and_the_resize_path_refuses():
    cm = am.ConfusionMatrix(3).update_logits(np.zeros((3, 2, 2)), np.zeros((2, 2), np.uint8))
    before = cm.matrix.copy()
    target = np.zeros((40, 40), np.uint8)
    target[-1, -1] = 7  # the last slab's last pixel
    with logits_module_slab(30), pytest.raises(ValueError, match="outside"):
        cm.update_logits(np.zeros((3, 40, 40)), target)
    np.testing.assert_array_equal(cm.matrix, before)
    with pytest.raises(TypeError, match="float32 or float16"):
        cm.update_logits(np.zeros((1, 3, 2, 2)), np.zeros((1, 4, 4), np.uint8), resize="bilinear")


def test_float64_with_boundary_metrics():
    rng = np.random.default_rng(2)
    scores = rng.normal(size=(3, 12, 12))
    target = rng.integers(0, 3, size=(12, 12))
    cm = am.ConfusionMatrix(3, boundary=0.1).update_logits(scores, target)
    ref = am.ConfusionMatrix(3, boundary=0.1).update(np.argmax(scores, axis=0), target)
    assert cm == ref


def test_slabs_cover_every_element_once():
    for shape, pixels in [((5, 7, 3), 4), ((5, 7, 3), 21), ((5, 7, 3), 1000), ((0, 4), 3), ((), 5), ((9,), 2)]:
        seen = np.zeros(shape, np.int64)
        for index in logits_module.slabs(shape, pixels):
            assert seen[index].size <= pixels or seen[index].size == 0 or len(shape) == 0
            seen[index] += 1
        assert (seen == 1).all()
