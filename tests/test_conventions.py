"""Each convention on matrices whose results are worked out by hand, and against the real torchmetrics."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import ade20k_metrics as am

# The worked example of the metrics module docstring.  Class 0: 4 ground-truth
# pixels, 3 right, 1 predicted as 2.  Class 1: 3 pixels, 2 right, 1 predicted
# as 0.  Class 2 is predicted-only, class 3 absent.
#   tp = [3, 2, 0, 0], fp = [1, 0, 1, 0], fn = [1, 1, 0, 0]
#   IoU = [3/5, 2/3, 0, 0/0]; Acc = [3/4, 2/3, 0/0, 0/0]; precision = [3/4, 1, 0, 0/0]
#   Dice = F1 = [6/8, 4/5, 0, 0/0]; aAcc = 5/7; fwIoU = 4/7 * 3/5 + 3/7 * 2/3 = 22/35
WORKED = np.array([[3, 0, 1, 0], [1, 2, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])
NAN = float("nan")


def close(actual, expected, rel=1e-12):
    np.testing.assert_allclose(np.asarray(actual, dtype=float), np.asarray(expected, dtype=float),
                               rtol=rel, atol=0, equal_nan=True)


def test_mmseg_worked_example():
    m = am.compute_metrics(WORKED, convention="mmseg")
    close(m.iou, [3 / 5, 2 / 3, 0, NAN])
    close(m.acc, [3 / 4, 2 / 3, NAN, NAN])
    close(m.precision, [3 / 4, 1, 0, NAN])
    close(m.dice, [3 / 4, 4 / 5, 0, NAN])
    # mmseg's F-score is f(precision, recall): 0/0 for the predicted-only class (tp = 0).
    close(m.fscore, [3 / 4, 4 / 5, NAN, NAN])
    close(m.miou, (3 / 5 + 2 / 3) / 3)
    close(m.macc, (3 / 4 + 2 / 3) / 2)
    close(m.mrecall, (3 / 4 + 2 / 3) / 2)
    close(m.mprecision, (3 / 4 + 1) / 3)
    close(m.mdice, (3 / 4 + 4 / 5) / 3)
    close(m.mfscore, (3 / 4 + 4 / 5) / 2)
    close(m.aacc, 5 / 7)
    close(m.fwiou, 22 / 35)
    close(m.score, (5 / 7 + 19 / 45) / 2)


def test_torchmetrics_worked_example():
    m = am.compute_metrics(WORKED, convention="torchmetrics")
    # Classes 0, 1, 2 have tp + fp + fn > 0; inside them 0/0 counts as 0.
    close(m.iou, [3 / 5, 2 / 3, 0, NAN])
    close(m.acc, [3 / 4, 2 / 3, 0, NAN])
    close(m.fscore, [3 / 4, 4 / 5, 0, NAN])
    close(m.miou, 19 / 45)
    close(m.macc, (3 / 4 + 2 / 3 + 0) / 3)
    close(m.mprecision, (3 / 4 + 1 + 0) / 3)
    close(m.mdice, (3 / 4 + 4 / 5) / 3)
    close(m.mfscore, (3 / 4 + 4 / 5) / 3)
    close(m.aacc, 5 / 7)


def test_detectron2_worked_example():
    m = am.compute_metrics(WORKED, convention="detectron2")
    close(m.iou, [3 / 5, 2 / 3, NAN, NAN])
    close(m.acc, [3 / 4, 2 / 3, NAN, NAN])
    close(m.miou, 19 / 30)
    close(m.macc, 17 / 24)
    close(m.mprecision, (3 / 4 + 1) / 2)
    close(m.mdice, (3 / 4 + 4 / 5) / 2)
    close(m.fwiou, 22 / 35)
    close(m.aacc, 5 / 7)
    close(m.score, (5 / 7 + 19 / 30) / 2)


def test_csail_worked_example():
    m = am.compute_metrics(WORKED, convention="csail")
    eps = 1e-10
    close(m.iou, [3 / (5 + eps), 2 / (3 + eps), 0, 0])
    close(m.miou, (3 / (5 + eps) + 2 / (3 + eps)) / 4)
    assert m.miou == pytest.approx(19 / 60, rel=1e-9)
    close(m.acc, [3 / 4, 2 / 3, 0, 0])
    close(m.macc, 17 / 48)
    close(m.mprecision, 7 / 16)
    close(m.mdice, 31 / 80)
    close(m.aacc, 5 / 7)


def test_csail_epsilon_decides_an_all_empty_class_and_is_visible_on_small_unions():
    # One class, 1 pixel right: the devkit gives 1 / (1 + 1e-10), not exactly 1.
    m = am.compute_metrics([[1, 0], [0, 0]], convention="csail")
    assert m.iou[0] == 1 / (1 + 1e-10) and m.iou[0] < 1
    assert m.iou[1] == 0.0
    assert m.miou == pytest.approx(0.5, rel=1e-9)


def test_fbeta_by_hand():
    # Class 1 of the worked example: tp 2, fp 0, fn 1.  F2 = 5*2 / (5*2 + 4*1 + 0) = 10/14.
    m = am.compute_metrics(WORKED, convention="detectron2", beta=2.0)
    close(m.fscore[:2], [15 / 20, 10 / 14])
    close(m.mfscore, (15 / 20 + 10 / 14) / 2)
    assert m.beta == 2.0
    # F0.5 = 1.25*2 / (1.25*2 + 0.25*1 + 0) = 2.5/2.75
    assert am.compute_metrics(WORKED, convention="torchmetrics", beta=0.5).fscore[1] == pytest.approx(2.5 / 2.75)


def test_the_issue_numbers():
    # Issue 4's example: 54.5 mIoU in mmseg/HF/torchmetrics, 81.8 in detectron2, 40.9 in the devkit.
    # Class 0: 10 px, 9 right, 1 predicted as 2; predicted 9 + 1 (from class 1) = 10 -> IoU 9/11.
    # Class 1: 11 px, 9 right, 1 -> 0, 1 -> 2; predicted 9 -> union 11 -> IoU 9/11.
    # Class 2 predicted-only (IoU 0), class 3 absent.
    matrix = np.array([[9, 0, 1, 0], [1, 9, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0]])
    assert am.compute_metrics(matrix).miou == pytest.approx(6 / 11)          # 0.545
    assert am.compute_metrics(matrix, convention="torchmetrics").miou == pytest.approx(6 / 11)
    assert am.compute_metrics(matrix, convention="detectron2").miou == pytest.approx(9 / 11)  # 0.818
    assert am.compute_metrics(matrix, convention="csail").miou == pytest.approx(9 / 22)       # 0.409


def test_empty_matrix_means_are_nan_everywhere():
    for convention in am.CONVENTIONS:
        m = am.compute_metrics(np.zeros((3, 3), np.int64), convention=convention)
        for name in m.SCALARS:
            assert np.isnan(getattr(m, name)), (convention, name)


def test_perfect_prediction_is_one_under_every_convention():
    matrix = np.diag([5, 0, 7])
    for convention in am.CONVENTIONS:
        m = am.compute_metrics(matrix, convention=convention)
        assert m.aacc == 1.0
        if convention == "csail":
            # the absent class counts 0, and the epsilon shaves the others
            assert m.miou == pytest.approx(2 / 3, rel=1e-9)
        else:
            assert m.miou == 1.0 and m.macc == 1.0 and m.mdice == 1.0 and m.mfscore == 1.0


def test_explain_lists_the_classes_and_every_convention():
    e = am.explain(WORKED, names=["wall", "floor", "tree", "sky"])
    assert e.absent == (3,) and e.predicted_only == (2,) and e.missed == ()
    assert e.miou["mmseg"] == pytest.approx(19 / 45)
    assert e.miou["torchmetrics"] == pytest.approx(19 / 45)
    assert e.miou["detectron2"] == pytest.approx(19 / 30)
    assert e.miou["csail"] == pytest.approx(19 / 60, rel=1e-9)
    assert e.macc["torchmetrics"] == pytest.approx(17 / 36)
    text = str(e)
    assert "3 (sky)" in text and "2 (tree)" in text
    for convention, value in [("mmseg", "0.4222"), ("detectron2", "0.6333"), ("csail", "0.3167")]:
        assert convention in text and value in text


def test_explain_missed_class_and_ade20k_default_names():
    matrix = np.zeros((150, 150), np.int64)
    matrix[0, 0] = 5
    matrix[1, 0] = 2    # class 1 ("building") in the GT, never right
    e = am.explain(matrix)
    assert e.missed == (1,)
    assert "building" in str(e)


@pytest.mark.parametrize("bad, exc", [("nope", ValueError), (3, TypeError), (None, TypeError)])
def test_unknown_convention(bad, exc):
    with pytest.raises(exc, match="convention"):
        am.compute_metrics(WORKED, convention=bad)


# -- an independent oracle: exact fractions, one class at a time ---------------

def oracle_means(matrix: np.ndarray, convention: str) -> tuple[Fraction | None, Fraction | None]:
    """mIoU and mAcc by the DESIGN.md table, in exact arithmetic (csail without its epsilon)."""
    k = matrix.shape[0]
    ious, accs = [], []
    for c in range(k):
        tp = int(matrix[c, c])
        gt = int(matrix[c, :].sum())
        pr = int(matrix[:, c].sum())
        union = gt + pr - tp
        if convention == "mmseg":
            if union:
                ious.append(Fraction(tp, union))
            if gt:
                accs.append(Fraction(tp, gt))
        elif convention == "torchmetrics":
            if union:
                ious.append(Fraction(tp, union))
                accs.append(Fraction(tp, gt) if gt else Fraction(0))
        elif convention == "detectron2":
            if gt:
                ious.append(Fraction(tp, union))
                accs.append(Fraction(tp, gt))
        else:
            ious.append(Fraction(tp, union) if union else Fraction(0))
            accs.append(Fraction(tp, gt) if gt else Fraction(0))
    mean = (lambda xs: sum(xs) / len(xs) if xs else None)
    return mean(ious), mean(accs)


matrices = st.integers(1, 6).flatmap(
    lambda k: st.lists(st.integers(0, 4) if k else st.just(0), min_size=k * k, max_size=k * k).map(
        lambda xs: np.array(xs, dtype=np.int64).reshape(k, k)))


def sparse(matrix: np.ndarray, drop: list[bool]) -> np.ndarray:
    """Zero some rows (classes absent from the ground truth) to make every case common."""
    out = matrix.copy()
    for i, d in enumerate(drop[: len(out)]):
        if d:
            out[i, :] = 0
    return out


@given(matrices, st.lists(st.booleans(), min_size=6, max_size=6), st.sampled_from(am.CONVENTIONS))
def test_every_convention_matches_the_exact_oracle(matrix, drop, convention):
    matrix = sparse(matrix, drop)
    m = am.compute_metrics(matrix, convention=convention)
    miou, macc = oracle_means(matrix, convention)
    if matrix.sum() == 0 or miou is None:
        assert np.isnan(m.miou)
    else:
        rel = 1e-9 if convention == "csail" else 1e-12
        assert m.miou == pytest.approx(float(miou), rel=rel, abs=1e-12)
    if matrix.sum() == 0 or macc is None:
        assert np.isnan(m.macc)
    else:
        assert m.macc == pytest.approx(float(macc), rel=1e-12, abs=1e-15)


# -- against the real torchmetrics ---------------------------------------------

def _labels_with_gaps(rng, k, n):
    """Target and prediction where some classes are absent and some predicted-only."""
    gt_classes = rng.choice(k, size=max(1, k // 2), replace=False)
    target = rng.choice(gt_classes, size=n)
    pred = np.where(rng.random(n) < 0.6, target, rng.integers(0, k, size=n))
    pred[pred == k - 1] = 0  # class k-1 never predicted; absent when not in gt_classes
    return pred, target


@pytest.mark.parametrize("seed", range(6))
def test_torchmetrics_convention_equals_torchmetrics(seed):
    torch = pytest.importorskip("torch")
    tmc = pytest.importorskip("torchmetrics.classification")
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 12))
    pred, target = _labels_with_gaps(rng, k, 400)
    p, t = torch.from_numpy(pred), torch.from_numpy(target)
    ours = am.compute_metrics(am.confusion_matrix(pred, target, k), convention="torchmetrics", beta=2.0)
    theirs = {
        "miou": tmc.MulticlassJaccardIndex(num_classes=k, average="macro"),
        "macc": tmc.MulticlassAccuracy(num_classes=k, average="macro"),
        "mprecision": tmc.MulticlassPrecision(num_classes=k, average="macro"),
        "mrecall": tmc.MulticlassRecall(num_classes=k, average="macro"),
        "mdice": tmc.MulticlassF1Score(num_classes=k, average="macro"),
        "mfscore": tmc.MulticlassFBetaScore(beta=2.0, num_classes=k, average="macro"),
    }
    for name, metric in theirs.items():
        expected = float(metric(p, t))
        assert getattr(ours, name) == pytest.approx(expected, rel=1e-5, abs=1e-6), name
    # Per class, torchmetrics writes 0 where we write NaN (class left out of the mean).
    per_class = tmc.MulticlassJaccardIndex(num_classes=k, average="none")(p, t).numpy()
    np.testing.assert_allclose(np.nan_to_num(ours.iou), per_class, rtol=1e-5, atol=1e-6)
    # mmseg's IoU average is the same number as torchmetrics'.
    assert am.compute_metrics(am.confusion_matrix(pred, target, k)).miou == pytest.approx(ours.miou, rel=1e-12)
