"""ImageStats: per-image IoU, worst images, bootstrap and paired intervals; the real torchmetrics if present."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import ade20k_metrics as am
from ade20k_metrics.analysis.stats import ImageStats

# Three images, 3 classes, 255 ignored.
#  A: target [0 0 1 1], pred [0 0 1 0]: IoU0 = 2/3, IoU1 = 1/2, class 2 absent -> mIoU 7/12
#  B: target [2 2],     pred [2 2]:     IoU2 = 1                               -> mIoU 1
#  C: target [0 255],   pred [1 0]:     IoU0 = 0 (missed), IoU1 = 0 (predicted) -> mIoU 0
# Dataset (summed): class 0 tp 2, gt 3, pred 3 -> 2/4; class 1 tp 1, gt 2, pred 2 -> 1/3; class 2 -> 1.
IMAGES = {
    "A": (np.array([0, 0, 1, 0]), np.array([0, 0, 1, 1])),
    "B": (np.array([2, 2]), np.array([2, 2])),
    "C": (np.array([1, 0]), np.array([0, 255])),
}


def three_images() -> ImageStats:
    s = ImageStats(3)
    for name, (pred, target) in IMAGES.items():
        s.update(pred, target, name=name)
    return s


def test_per_image_values_by_hand():
    s = three_images()
    assert len(s) == 3 and s.names == ["A", "B", "C"]
    np.testing.assert_allclose(s.image_iou(), [[2 / 3, 1 / 2, np.nan], [np.nan, np.nan, 1], [0, 0, np.nan]])
    np.testing.assert_allclose(s.image_miou(), [7 / 12, 1, 0])
    assert s.mean_image_miou() == pytest.approx((7 / 12 + 1 + 0) / 3)
    # torchmetrics' segmentation.MeanIoU: the 5 (image, class) pairs with a non-empty union.
    assert s.torchmetrics_segmentation_miou() == pytest.approx((2 / 3 + 1 / 2 + 1 + 0 + 0) / 5)
    np.testing.assert_allclose(s.torchmetrics_segmentation_miou(per_class=True), [1 / 3, 1 / 4, 1])
    # The dataset mIoU sums the counts first: a different number.
    assert s.compute().miou == pytest.approx((1 / 2 + 1 / 3 + 1) / 3)


def test_counts_and_matrix_by_hand():
    s = three_images()
    tp, fp, fn = s.counts()
    np.testing.assert_array_equal(tp, [[2, 1, 0], [0, 0, 2], [0, 0, 0]])
    np.testing.assert_array_equal(fp, [[1, 0, 0], [0, 0, 0], [0, 1, 0]])
    np.testing.assert_array_equal(fn, [[0, 1, 0], [0, 0, 0], [1, 0, 0]])
    np.testing.assert_array_equal(s.matrix, [[2, 1, 0], [1, 1, 0], [0, 0, 2]])
    with pytest.raises(ValueError):
        s.matrix[0, 0] = 5


def test_worst_images():
    s = three_images()
    assert s.worst(2) == [("C", 0.0), ("A", pytest.approx(7 / 12))]
    assert [name for name, _ in s.worst(10)] == ["C", "A", "B"]
    assert s.worst(0) == []
    with pytest.raises(ValueError):
        s.worst(-1)
    with pytest.raises(TypeError):
        s.worst(1.5)


def test_image_with_nothing_evaluated_is_nan_and_skipped_by_worst():
    s = ImageStats(2)
    s.update(np.array([0, 1]), np.array([255, 255]), name="blank")
    s.update(np.array([0]), np.array([0]), name="ok")
    assert np.isnan(s.image_miou()[0])
    assert s.worst(5) == [("ok", 1.0)]


def test_failed_update_changes_nothing():
    s = three_images()
    before = s.matrix.copy()
    with pytest.raises(ValueError):
        s.update(np.array([0, 7]), np.array([0, 1]))
    assert len(s) == 3 and s.names == ["A", "B", "C"]
    np.testing.assert_array_equal(s.matrix, before)


def test_update_batch_and_names():
    s = ImageStats(3).update_batch(np.array([[0, 1], [2, 2]]), np.array([[0, 1], [2, 1]]), names=["x", "y"])
    assert s.names == ["x", "y"]
    np.testing.assert_allclose(s.image_miou(), [1.0, (1 / 2 + 0) / 2])
    with pytest.raises(ValueError, match="names"):
        ImageStats(3).update_batch(np.zeros((2, 2), int), np.zeros((2, 2), int), names=["only"])
    with pytest.raises(ValueError, match="same shape"):
        ImageStats(3).update_batch(np.zeros((2, 2), int), np.zeros((3, 2), int))


def test_bootstrap_of_two_images_spans_their_own_mious():
    # A: (gt, pred) = (0,0) (0,0) (1,0): IoU0 = 2/3, IoU1 = 0/1 -> mIoU 1/3.  B: perfect -> mIoU 1.
    # Resamples of two images are AA (mIoU 1/3), AB or BB (mIoU 1), AA and BB a quarter of the time
    # each, so the 2.5% and 97.5% quantiles of 1000 resamples are exactly 1/3 and 1.
    s = ImageStats(2)
    s.update(np.array([0, 0, 0]), np.array([0, 0, 1]), name="A")
    s.update(np.array([0, 1]), np.array([0, 1]), name="B")
    ci = s.bootstrap_miou(1000, seed=0)
    assert ci.low == pytest.approx(1 / 3) and ci.high == pytest.approx(1.0)
    # Dataset mIoU of A + B: class 0 tp 3, gt 3, pred 4 -> 3/4; class 1 tp 1, gt 2, pred 1 -> 1/2.
    assert ci.estimate == pytest.approx((3 / 4 + 1 / 2) / 2)
    assert ci.confidence == 0.95 and ci.n_resamples == 1000 and ci.convention == "mmseg"
    assert "95% bootstrap CI" in str(ci)


def test_bootstrap_is_reproducible_and_degenerate_for_identical_images():
    s = ImageStats(3)
    for _ in range(5):
        s.update(np.array([0, 1, 1]), np.array([0, 1, 2]))
    ci = s.bootstrap_miou(200, seed=3, convention="detectron2")
    # each image: class 0 IoU 1, class 1 IoU 1/2, class 2 IoU 0 -> 1/2 in every resample
    assert ci.low == ci.high == pytest.approx(1 / 2) and ci.estimate == pytest.approx(1 / 2)
    s2 = three_images()
    assert s2.bootstrap_miou(300, seed=7) == s2.bootstrap_miou(300, seed=7)


def test_paired_comparison():
    better, worse = ImageStats(2), ImageStats(2)
    targets = [np.array([0, 0, 1]), np.array([1, 1, 0]), np.array([0, 1, 1])]
    for t in targets:
        better.update(t, t)                         # perfect
        worse.update(np.zeros_like(t), t)           # everything called class 0
    cmp = better.compare(worse, 500, seed=1)
    # worse, summed: class 0 tp 4, gt 4, pred 9 -> 4/9; class 1 tp 0 -> 0: mIoU 2/9.
    assert cmp.miou_a == 1.0 and cmp.miou_b == pytest.approx(2 / 9)
    assert cmp.difference == pytest.approx(7 / 9)
    assert cmp.share_not_better == 0.0 and 0 < cmp.low <= cmp.difference <= cmp.high
    same = better.compare(better, 100, seed=1)
    assert same.difference == 0 and same.low == 0 and same.high == 0 and same.share_not_better == 1.0
    assert "paired bootstrap" in str(cmp)


def test_paired_comparison_refuses_different_images():
    a, b = ImageStats(2), ImageStats(2)
    a.update(np.array([0, 1]), np.array([0, 1]), name="img")
    b.update(np.array([0, 1]), np.array([1, 1]), name="img")
    with pytest.raises(ValueError, match="ground truth of image 'img' differs"):
        a.compare(b)
    with pytest.raises(ValueError, match="not the same images"):
        a.compare(ImageStats(2))
    with pytest.raises(TypeError):
        a.compare(a.matrix)


@pytest.mark.parametrize("kwargs, exc", [({"n_resamples": 0}, ValueError), ({"n_resamples": 2.5}, TypeError),
                                         ({"confidence": 1.0}, ValueError), ({"confidence": "0.9"}, TypeError),
                                         ({"convention": "voc"}, ValueError)])
def test_bootstrap_argument_errors(kwargs, exc):
    with pytest.raises(exc):
        three_images().bootstrap_miou(**kwargs)


def test_bootstrap_without_images():
    with pytest.raises(ValueError, match="no images"):
        ImageStats(3).bootstrap_miou()


def test_reduce_zero_label_as_the_accumulator():
    from ade20k_metrics import ade20k

    s = ImageStats(150, reduce_zero_label=True)
    cm = am.ConfusionMatrix(150, reduce_zero_label=True)
    for i, (name, gt) in enumerate(ade20k.sample_annotations().items()):
        pred = ade20k.simulate_prediction(gt, seed=i) - 1
        s.update(pred, gt, name=name)
        cm.update(pred, gt)
    np.testing.assert_array_equal(s.matrix, cm.matrix)
    assert s.compute().miou == cm.compute().miou


images = st.lists(
    st.integers(1, 30).flatmap(lambda n: st.tuples(
        st.lists(st.integers(0, 3), min_size=n, max_size=n), st.lists(st.integers(0, 3), min_size=n, max_size=n))),
    min_size=1, max_size=6)


@given(images)
def test_per_image_counts_add_up_to_one_big_update(imgs):
    s = ImageStats(4)
    for pred, target in imgs:
        s.update(np.array(pred), np.array(target))
    all_pred = np.concatenate([np.array(p) for p, _ in imgs])
    all_target = np.concatenate([np.array(t) for _, t in imgs])
    whole = am.confusion_matrix(all_pred, all_target, 4)
    np.testing.assert_array_equal(s.matrix, whole)
    tp, fp, fn = s.counts()
    np.testing.assert_array_equal(tp.sum(0), np.diag(whole))
    np.testing.assert_array_equal((tp + fn).sum(0), whole.sum(1))
    np.testing.assert_array_equal((tp + fp).sum(0), whole.sum(0))
    # Each image's mIoU is the dataset mIoU of that image alone.
    per_image = s.image_miou()
    for i, (pred, target) in enumerate(imgs):
        alone = am.compute_metrics(am.confusion_matrix(np.array(pred), np.array(target), 4)).miou
        np.testing.assert_allclose(per_image[i], alone, rtol=1e-12, equal_nan=True)


@given(images, st.integers(0, 2**32 - 1))
def test_bootstrap_interval_brackets_within_the_image_extremes(imgs, seed):
    s = ImageStats(4)
    for pred, target in imgs:
        s.update(np.array(pred), np.array(target))
    ci = s.bootstrap_miou(50, seed=seed)
    assert ci.low <= ci.high
    assert 0 <= ci.low and ci.high <= 1


# -- against the real torchmetrics ---------------------------------------------

@pytest.mark.parametrize("seed", range(4))
def test_matches_torchmetrics_segmentation_mean_iou(seed):
    torch = pytest.importorskip("torch")
    segmentation = pytest.importorskip("torchmetrics.segmentation")
    functional = pytest.importorskip("torchmetrics.functional.segmentation")
    rng = np.random.default_rng(seed)
    k, n = int(rng.integers(2, 8)), int(rng.integers(1, 6))
    # Each image uses a few classes only, so many (image, class) pairs are empty.
    target = np.stack([rng.choice(rng.choice(k, size=2), size=(6, 7)) for _ in range(n)])
    pred = np.where(rng.random(target.shape) < 0.7, target, rng.integers(0, k, target.shape))
    s = ImageStats(k).update_batch(pred, target)
    p, t = torch.from_numpy(pred), torch.from_numpy(target)
    pooled = segmentation.MeanIoU(num_classes=k, input_format="index")
    pooled.update(p, t)
    assert s.torchmetrics_segmentation_miou() == pytest.approx(float(pooled.compute()), rel=1e-5)
    per_class = segmentation.MeanIoU(num_classes=k, input_format="index", per_class=True)
    per_class.update(p, t)
    np.testing.assert_allclose(np.nan_to_num(s.torchmetrics_segmentation_miou(per_class=True), nan=-1.0),
                               per_class.compute().numpy(), rtol=1e-5)
    per_sample = functional.mean_iou(p, t, num_classes=k, input_format="index").numpy()
    np.testing.assert_allclose(s.image_miou(), per_sample, rtol=1e-5)
