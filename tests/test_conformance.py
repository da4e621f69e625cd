"""Drop-in behaviour for the peers (issue 13): torchmetrics' ignore_index class, normalised matrices,
micro IoU, zero_division, metrics from mmseg's areas, HF's keywords, sum() of accumulators, and the
off-by-one label warning that must fire on shifted labels and never on a real run.

Expected values are derived by hand from the definitions (comments show the arithmetic) or taken
from the real peer where it is installed (torchmetrics runs in CI's second pass).
"""
import importlib.util
import warnings

import numpy as np
import pytest

import ade20k_metrics as am
from ade20k_metrics.metrics.shift import label_shift

HAS_TORCHMETRICS = importlib.util.find_spec("torchmetrics") is not None


# -- torchmetrics: ignore_index inside [0, K) -------------------------------------------------------

def test_torchmetrics_convention_leaves_an_ignore_index_class_out_of_miou():
    # MulticlassJaccardIndex(2, ignore_index=0)(preds=[0, 1], target=[1, 1]) = 0.5 in torchmetrics:
    # class 1 has tp 1, fn 1 -> IoU 1/2; class 0 (the ignore_index) gets weight 0 in the macro mean.
    cm = am.ConfusionMatrix(2, ignore_index=0).update(np.array([0, 1]), np.array([1, 1]))
    assert cm.compute("torchmetrics").miou == pytest.approx(0.5)
    # mmseg keeps the class: its IoU 0 (predicted, never in the ground truth) counts -> (0 + 1/2) / 2.
    assert cm.compute("mmseg").miou == pytest.approx(0.25)
    # compute_metrics takes the same information as a keyword.
    assert am.compute_metrics(cm.matrix, convention="torchmetrics", ignore_index=0).miou == pytest.approx(0.5)
    assert am.compute_metrics(cm.matrix, convention="torchmetrics").miou == pytest.approx(0.25)
    # An ignore_index outside the classes changes nothing.
    assert am.compute_metrics(cm.matrix, convention="torchmetrics", ignore_index=255).miou == pytest.approx(0.25)


def test_micro_iou_by_hand():
    # tp = 3 + 2 = 5 of 7 pixels; sum of unions = sum(tp) + sum(fp) + sum(fn) = 5 + 2 + 2 = 9.
    matrix = np.array([[3, 0, 1], [1, 2, 0], [0, 0, 0]])
    assert am.compute_metrics(matrix).micro_iou == pytest.approx(5 / 9)
    # torchmetrics leaves the ignore_index class's union out: class 2's union is 1 -> 5 / 8.
    assert am.compute_metrics(matrix, convention="torchmetrics", ignore_index=2).micro_iou == pytest.approx(5 / 8)
    assert np.isnan(am.compute_metrics(np.zeros((3, 3), np.int64)).micro_iou)


def test_zero_division_fills_per_class_values_and_leaves_the_means():
    matrix = np.array([[3, 0, 0], [1, 2, 0], [0, 0, 0]])  # class 2 absent: IoU 0/0
    plain = am.compute_metrics(matrix, convention="torchmetrics")
    filled = am.compute_metrics(matrix, convention="torchmetrics", zero_division=1.0)
    assert np.isnan(plain.iou[2]) and filled.iou[2] == 1.0
    assert filled.iou[0] == pytest.approx(3 / 4) and filled.iou[1] == pytest.approx(2 / 3)
    assert filled.miou == plain.miou == pytest.approx((3 / 4 + 2 / 3) / 2)
    with pytest.raises(TypeError, match="zero_division"):
        am.compute_metrics(matrix, zero_division="0")


@pytest.mark.parametrize("normalize, expected", [
    ("true", [[3 / 4, 0, 1 / 4], [1 / 3, 2 / 3, 0], [0, 0, 0]]),
    ("pred", [[3 / 4, 0, 1], [1 / 4, 1, 0], [0, 0, 0]]),
    ("all", [[3 / 7, 0, 1 / 7], [1 / 7, 2 / 7, 0], [0, 0, 0]]),
    (None, [[3, 0, 1], [1, 2, 0], [0, 0, 0]]),
])
def test_normalized_matrix(normalize, expected):
    matrix = np.array([[3, 0, 1], [1, 2, 0], [0, 0, 0]])
    cm = am.ConfusionMatrix(3)
    cm.update(np.array([0, 0, 0, 2, 0, 1, 1]), np.array([0, 0, 0, 0, 1, 1, 1]))
    assert np.array_equal(cm.matrix, matrix)
    np.testing.assert_allclose(am.normalize_matrix(matrix, normalize), expected)
    np.testing.assert_allclose(cm.normalized(normalize), expected)
    np.testing.assert_allclose(cm.compute().normalized_matrix(normalize), expected)
    with pytest.raises(ValueError, match="normalize"):
        am.normalize_matrix(matrix, "rows")


# -- mmseg: metrics from areas or tp / fp / fn ------------------------------------------------------

def test_metrics_from_mmseg_areas_and_from_counts_equal_the_matrix_path():
    rng = np.random.default_rng(3)
    matrix = rng.integers(0, 50, (6, 6))
    matrix[4] = 0
    matrix[:, 5] = 0
    matrix[5] = 0  # class 5 absent, class 4 predicted-only
    tp = np.diag(matrix)
    label, pred_label = matrix.sum(axis=1), matrix.sum(axis=0)
    union = label + pred_label - tp
    for convention in am.CONVENTIONS:
        want = am.compute_metrics(matrix, convention=convention)
        got = am.compute_metrics_from_areas(tp, union, pred_label, label, convention=convention)
        counts = am.compute_metrics_from_counts(tp, pred_label - tp, label - tp, convention=convention)
        for m in (got, counts):
            for name in ("iou", "acc", "precision", "dice", "fscore"):
                np.testing.assert_allclose(getattr(m, name), getattr(want, name), equal_nan=True)
            for name in ("miou", "macc", "aacc", "mdice", "mfscore", "fwiou", "micro_iou"):
                np.testing.assert_allclose(getattr(m, name), getattr(want, name), equal_nan=True)
            assert m.matrix is None
        assert "wall" not in got.table()  # 6 classes: indices, and the table needs no matrix
    with pytest.raises(ValueError, match="area_union"):
        am.compute_metrics_from_areas(tp, union + 1, pred_label, label)
    with pytest.raises(ValueError, match="no matrix"):
        got.normalized_matrix()


def test_mmseg_all_acc_from_areas_by_hand():
    # mmseg: all_acc = total_area_intersect.sum() / total_area_label.sum() = (3 + 2) / (4 + 3).
    m = am.compute_metrics_from_areas(np.array([3, 2]), np.array([4, 4]), np.array([3, 3]), np.array([4, 3]))
    assert m.aacc == pytest.approx(5 / 7)
    assert m.iou[0] == pytest.approx(3 / 4) and m.iou[1] == pytest.approx(2 / 4)


# -- HF evaluate's keywords and iterables ------------------------------------------------------------

def test_hf_mean_iou_takes_the_metric_keywords_and_iterators():
    preds = [np.array([[0, 1], [2, 2]]), np.array([[1, 1], [0, 0]])]
    refs = [np.array([[0, 1], [2, 255]]), np.array([[1, 0], [0, 0]])]
    by_position = am.compat.hf_mean_iou(preds, refs, 3, 255)
    by_keyword = am.compat.hf_mean_iou(predictions=iter(preds), references=(r for r in refs),
                                       num_labels=3, ignore_index=255)
    for key in by_position:
        np.testing.assert_allclose(by_keyword[key], by_position[key], equal_nan=True)
    # by hand: class 0: tp 3 (one pixel in each image... ) -> pixels (0,0) img1, (1,0),(1,1) img2 right,
    # (0,1) img2 is gt 0 pred 1: class 0 gt 4, tp 3; class 1: gt 2 (img1 (0,1), img2 (0,0)), tp 2, pred 3.
    assert by_keyword["overall_accuracy"] == pytest.approx(6 / 7)
    assert by_keyword["per_category_iou"][0] == pytest.approx(3 / 4)
    assert by_keyword["per_category_iou"][1] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="3 predictions but 2 ground-truth maps"):
        am.compat.hf_mean_iou(iter(preds + preds[:1]), iter(refs), 3, 255)
    with pytest.raises(TypeError, match="not both"):
        am.compat.hf_mean_iou(preds, refs, 3, 255, predictions=preds)
    with pytest.raises(TypeError, match="ignore_index"):
        am.compat.hf_mean_iou(predictions=preds, references=refs, num_labels=3)


# -- Python conventions ------------------------------------------------------------------------------

def test_sum_of_accumulators_starts_from_zero():
    a = am.ConfusionMatrix(3).update(np.array([0, 1]), np.array([0, 2]))
    b = am.ConfusionMatrix(3).update(np.array([2]), np.array([2]))
    total = sum([a, b])
    assert isinstance(total, am.ConfusionMatrix)
    assert total.matrix[0, 0] == 1 and total.matrix[2, 1] == 1 and total.matrix[2, 2] == 1 and total.total == 3
    assert a.total == 2  # sum() copied, never changed its first term
    with pytest.raises(TypeError):
        1 + a


# -- labels off by one class ------------------------------------------------------------------------

def _network_like(gt: np.ndarray, noise: float, seed: int) -> np.ndarray:
    """Each class's indicator box-blurred, plus a smooth random field per class, then the argmax."""
    rng = np.random.default_rng(seed)
    h, w = gt.shape
    classes = np.unique(gt)
    extra = rng.choice(np.setdiff1d(np.arange(1, 151), classes), 3, replace=False)
    classes = np.concatenate([classes, extra])

    def blur(x, r):
        for axis in (0, 1):
            c = np.cumsum(np.pad(x, [(r + 1, r) if a == axis else (0, 0) for a in (0, 1)], mode="edge"), axis=axis)
            x = (np.take(c, range(2 * r + 1, c.shape[axis]), axis=axis)
                 - np.take(c, range(0, c.shape[axis] - 2 * r - 1), axis=axis)) / (2 * r + 1)
        return x

    scores = []
    for k in classes:
        field = rng.standard_normal((h // 16 + 2, w // 16 + 2))
        field = np.kron(field, np.ones((16, 16)))[:h, :w]
        scores.append(blur((gt == k).astype(np.float64), 4) + noise * blur(field, 8))
    return classes[np.argmax(np.stack(scores), axis=0)].astype(np.uint8)


@pytest.fixture(scope="module")
def annotations():
    return [a[::2, ::2] for a in am.ade20k.sample_annotations().values()]


def test_network_like_predictions_never_warn_even_when_poor(annotations):
    accuracies = []
    for noise in (0.3, 0.5, 1.0, 3.0, 10.0):
        cm = am.ConfusionMatrix(150, reduce_zero_label=True)
        for i, gt in enumerate(annotations):
            cm.update(np.maximum(_network_like(gt, noise, i), 1) - 1, gt)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            m = cm.compute()
            am.explain(cm.matrix)
        accuracies.append(m.aacc)
        assert label_shift(cm.matrix) == 0
    assert max(accuracies) > 0.75 and min(accuracies) < 0.5, accuracies  # good and bad models both tried


def test_official_format_predictions_against_reduced_ground_truth_warn_with_the_fix(annotations):
    cm = am.ConfusionMatrix(150, reduce_zero_label=True)
    for i, gt in enumerate(annotations):
        pred = am.ade20k.simulate_prediction(gt, seed=i)  # 1..150, the official format
        cm.update(np.minimum(pred, 149), gt)              # forgot pred - 1
    with pytest.warns(am.LabelShiftWarning, match=r"one class higher.*pred - 1"):
        m = cm.compute()
    assert m.miou < 0.05
    with pytest.warns(am.LabelShiftWarning):
        text = str(am.explain(cm.matrix))
    assert "one class higher" in text


def test_unreduced_ground_truth_against_zero_based_predictions_warns_the_other_way(annotations):
    cm = am.ConfusionMatrix(151, ignore_index=None)
    for i, gt in enumerate(annotations):
        pred = am.ade20k.simulate_prediction(gt, seed=i).astype(np.int64) - 1  # train ids 0..149
        cm.update(np.maximum(pred, 0), gt)                                      # gt still 0..150
    with pytest.warns(am.LabelShiftWarning, match=r"one class lower.*reduce_zero_label=True"):
        cm.compute()


def test_shift_is_a_property_of_the_matrix_not_of_one_confused_pair():
    k = 10
    right = np.diag(np.full(k, 100))
    assert label_shift(right) == 0
    shifted = np.roll(np.diag(np.full(k, 200)), 1, axis=1)  # every class predicted as the next
    assert label_shift(shifted) == 1 and label_shift(shifted.T) == -1
    one_pair = right.copy()
    one_pair[3, 3], one_pair[3, 4] = 0, 100 * k  # one huge class always confused with its neighbour
    assert label_shift(one_pair) == 0
    assert label_shift(np.zeros((k, k), np.int64)) == 0 and label_shift(np.ones((2, 2))) == 0
    assert label_shift(np.roll(np.eye(k, dtype=np.int64), 1, axis=1)) == 0  # 10 pixels are no evidence


def test_table_explains_mdice_against_mfscore_under_mmseg():
    matrix = np.array([[3, 1, 0], [2, 0, 0], [0, 0, 4]])  # class 1: tp 0 -> F-score NaN, Dice 0
    m = am.compute_metrics(matrix)
    assert np.isnan(m.fscore[1]) and m.dice[1] == 0
    assert m.mdice != m.mfscore
    assert "drop out of mFscore" in m.table()
    assert "drop out of mFscore" not in am.compute_metrics(np.diag([3, 2, 4])).table()


# -- against the real torchmetrics, over its own parameter grid ---------------------------------------

@pytest.mark.skipif(not HAS_TORCHMETRICS, reason="torchmetrics is not installed")
@pytest.mark.parametrize("ignore_index", [None, 0, 2, -1, 255])
@pytest.mark.parametrize("seed", range(4))
def test_against_torchmetrics_jaccard_accuracy_and_confusion_matrix(ignore_index, seed):
    import torch
    from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix, MulticlassJaccardIndex

    k = 5
    rng = np.random.default_rng(seed)
    target = rng.integers(0, k, 400)
    pred = np.where(rng.random(400) < 0.6, target, rng.integers(0, k, 400))
    if seed % 2:
        target[target == 3] = 1  # a predicted-only class
        pred[pred == 4] = 0      # and an absent one
    if ignore_index is not None:
        target[rng.random(400) < 0.1] = ignore_index
    t, p = torch.from_numpy(target), torch.from_numpy(pred)
    ours_ignore = ignore_index if ignore_index is None or ignore_index >= 0 else None
    keep = np.ones(400, bool) if ignore_index is None else target != ignore_index
    cm = am.ConfusionMatrix(k, ignore_index=ours_ignore)
    cm.update(pred[keep], target[keep]) if ours_ignore is None else cm.update(pred, target)
    if ours_ignore is None and ignore_index is not None:  # -1: ours counts only the kept pixels
        m = am.compute_metrics(cm.matrix, convention="torchmetrics", ignore_index=ignore_index)
    else:
        m = cm.compute("torchmetrics")
    for zero_division in (0.0, 1.0):
        per_class = MulticlassJaccardIndex(k, average="none", ignore_index=ignore_index,
                                           zero_division=zero_division)(p, t).numpy()
        filled = am.compute_metrics(cm.matrix, convention="torchmetrics", ignore_index=ignore_index,
                                    zero_division=zero_division)
        np.testing.assert_allclose(filled.iou, per_class, rtol=1e-6)
    macro = MulticlassJaccardIndex(k, average="macro", ignore_index=ignore_index)(p, t).item()
    micro = MulticlassJaccardIndex(k, average="micro", ignore_index=ignore_index)(p, t).item()
    acc = MulticlassAccuracy(k, average="macro", ignore_index=ignore_index)(p, t).item()
    assert m.miou == pytest.approx(macro, rel=1e-6)
    assert m.micro_iou == pytest.approx(micro, rel=1e-6)
    assert m.macc == pytest.approx(acc, rel=1e-6)
    for normalize in ("true", "pred", "all", "none"):
        with warnings.catch_warnings():  # torchmetrics warns when it turns a 0/0 row into zeros
            warnings.filterwarnings("ignore", ".*NaN values found in confusion matrix", UserWarning)
            theirs = MulticlassConfusionMatrix(k, ignore_index=ignore_index, normalize=normalize)(p, t).numpy()
        np.testing.assert_allclose(cm.normalized(normalize), theirs, rtol=1e-6)


@pytest.mark.skipif(not HAS_TORCHMETRICS, reason="torchmetrics is not installed")
def test_the_torchmetrics_adapter_leaves_the_ignore_index_class_out_too():
    import torch
    from ade20k_metrics.torchmetrics import SegmentationMetrics

    metric = SegmentationMetrics(2, ignore_index=0, convention="torchmetrics")
    metric.update(torch.tensor([0, 1]), torch.tensor([1, 1]))
    assert metric.compute()["miou"].item() == pytest.approx(0.5)  # as MulticlassJaccardIndex(2, ignore_index=0)
