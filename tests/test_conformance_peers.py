"""The peers' own test grids, driven through thin wrappers over the public API (issue 13, "done when").

What the suite already holds (read before adding here):
* torchmetrics MulticlassJaccardIndex (average macro / micro / none, zero_division),
  MulticlassAccuracy macro and MulticlassConfusionMatrix (every normalize) on 1-d
  labels over an ignore_index grid: tests/test_conformance.py;
* torchmetrics segmentation.MeanIoU / functional mean_iou (index format, per_class,
  include_background): tests/test_stats.py, tests/test_conformance_options.py;
* mmseg 0.30 tests/test_metrics.py, restated: tests/test_compat_mmseg.py;
* HF evaluate mean_iou's docstring example: tests/test_compat.py.

The gap this file fills, from torchmetrics' tests/unittests/classification/
test_jaccard.py and test_confusion_matrix.py (their _multiclass_cases): inputs
as (N, ...) label maps *and* as (N, C, ...) float scores that torchmetrics
argmaxes over dim 1; ``average="weighted"``; MulticlassAccuracy micro and
weighted, F1 / precision / recall macro (the package's per-class tables); and
HF evaluate's metric-card "How to Use" call (one 2-d array, not a list).
Each wrapper is a few lines over ConfusionMatrix; the expected values are the
real torchmetrics' (CI's second pass installs it).
"""
from __future__ import annotations

import importlib.util
import warnings

import numpy as np
import pytest

import ade20k_metrics as am
from ade20k_metrics.compat import hf_mean_iou

HAS_TORCHMETRICS = importlib.util.find_spec("torchmetrics") is not None
needs_torchmetrics = pytest.mark.skipif(not HAS_TORCHMETRICS, reason="torchmetrics is not installed")

K = 5


# -- thin wrappers: torchmetrics' classes as a user would write them over this package ---------------

def _matrix(preds, target, num_classes, ignore_index):
    """The accumulator a wrapper holds; float preds are (N, C, ...) scores, argmaxed over dim 1."""
    preds, target = np.asarray(preds), np.asarray(target)
    in_range = ignore_index is None or ignore_index >= 0
    cm = am.ConfusionMatrix(num_classes, ignore_index=ignore_index if in_range else None)
    keep = None if in_range else target != ignore_index  # a negative ignore value is no label: drop those pixels
    if preds.dtype.kind == "f":
        if keep is not None:
            preds = np.moveaxis(np.moveaxis(preds, 1, -1)[keep], -1, 0)
            return cm.update_logits(preds, target[keep], axis=0)
        return cm.update_logits(preds, target, axis=1)
    return cm.update(preds, target) if keep is None else cm.update(preds[keep], target[keep])


def jaccard(preds, target, num_classes, average="macro", ignore_index=None):
    cm = _matrix(preds, target, num_classes, ignore_index)
    m = am.compute_metrics(cm.matrix, convention="torchmetrics", ignore_index=ignore_index, zero_division=0.0)
    return {"macro": m.miou, "micro": m.micro_iou, "weighted": m.fwiou, "none": m.iou}[average]


def accuracy(preds, target, num_classes, average="macro", ignore_index=None):
    cm = _matrix(preds, target, num_classes, ignore_index)
    m = am.compute_metrics(cm.matrix, convention="torchmetrics", ignore_index=ignore_index)
    # weighted by support: sum of recall x support over the support = the overall pixel accuracy
    return {"macro": m.macc, "micro": m.aacc, "weighted": m.aacc}[average]


def f_precision_recall(preds, target, num_classes, ignore_index=None):
    cm = _matrix(preds, target, num_classes, ignore_index)
    m = am.compute_metrics(cm.matrix, convention="torchmetrics", ignore_index=ignore_index)
    return m.mfscore, m.mprecision, m.mrecall


def confusion(preds, target, num_classes, ignore_index=None, normalize=None):
    return _matrix(preds, target, num_classes, ignore_index).normalized(normalize)


# -- inputs in the shapes torchmetrics' _multiclass_cases use ------------------------------------------

def _case(seed, ignore_index, kind):
    rng = np.random.default_rng(seed)
    target = rng.integers(0, K, size=(4, 6, 7))  # (N, ...) multidim labels
    labels = np.where(rng.random(target.shape) < 0.55, target, rng.integers(0, K, target.shape))
    if seed % 2:
        target[target == 3] = 1  # a class only ever predicted
        labels[labels == 4] = 0  # and one never predicted
    if ignore_index is not None:
        target[rng.random(target.shape) < 0.1] = ignore_index
    if kind == "labels":
        return labels, target
    # (N, C, ...) scores whose argmax over dim 1 is ``labels``; softmax-normalised as torchmetrics' cases are
    scores = rng.random((labels.shape[0], K) + labels.shape[1:])
    np.put_along_axis(scores, labels[:, None], 2.0, axis=1)
    scores = np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)
    return scores.astype(np.float32 if kind == "probs32" else np.float64), target


@needs_torchmetrics
@pytest.mark.parametrize("kind", ["labels", "probs32", "probs64"])
@pytest.mark.parametrize("ignore_index", [None, 0, 2, -1, 255])
@pytest.mark.parametrize("seed", range(3))
def test_torchmetrics_multiclass_grid(seed, ignore_index, kind):
    import torch
    from torchmetrics.classification import (MulticlassAccuracy, MulticlassConfusionMatrix, MulticlassF1Score,
                                             MulticlassJaccardIndex, MulticlassPrecision, MulticlassRecall)

    preds, target = _case(seed, ignore_index, kind)
    p, t = torch.from_numpy(preds), torch.from_numpy(target)
    for average in ("macro", "micro", "weighted", "none"):
        theirs = MulticlassJaccardIndex(K, average=average, ignore_index=ignore_index)(p, t).numpy()
        np.testing.assert_allclose(jaccard(preds, target, K, average, ignore_index), theirs, rtol=1e-5,
                                   err_msg=f"Jaccard {average}")
    for average in ("macro", "micro", "weighted"):
        theirs = MulticlassAccuracy(K, average=average, ignore_index=ignore_index)(p, t).item()
        assert accuracy(preds, target, K, average, ignore_index) == pytest.approx(theirs, rel=1e-5), average
    f1, precision, recall = f_precision_recall(preds, target, K, ignore_index)
    assert f1 == pytest.approx(MulticlassF1Score(K, average="macro", ignore_index=ignore_index)(p, t).item(), rel=1e-5)
    assert precision == pytest.approx(
        MulticlassPrecision(K, average="macro", ignore_index=ignore_index)(p, t).item(), rel=1e-5)
    assert recall == pytest.approx(MulticlassRecall(K, average="macro", ignore_index=ignore_index)(p, t).item(),
                                   rel=1e-5)
    for normalize in (None, "true", "pred", "all"):
        with warnings.catch_warnings():  # torchmetrics warns when it turns a 0/0 row into zeros
            warnings.filterwarnings("ignore", ".*NaN values found in confusion matrix", UserWarning)
            theirs = MulticlassConfusionMatrix(K, ignore_index=ignore_index, normalize=normalize)(p, t).numpy()
        np.testing.assert_allclose(confusion(preds, target, K, ignore_index, normalize), theirs, rtol=1e-6)


@needs_torchmetrics
def test_torchmetrics_accumulates_over_batches_like_the_wrapper():
    # torchmetrics' MetricTester also checks the accumulated value over several update() calls.
    import torch
    from torchmetrics.classification import MulticlassJaccardIndex

    theirs = MulticlassJaccardIndex(K, average="macro", ignore_index=255)
    cm = am.ConfusionMatrix(K)
    for seed in range(4):
        preds, target = _case(seed, 255, "probs32")
        theirs.update(torch.from_numpy(preds), torch.from_numpy(target))
        cm.update_logits(preds, target)
    assert cm.compute("torchmetrics").miou == pytest.approx(theirs.compute().item(), rel=1e-5)


# -- HF evaluate: the metric card's "How to Use" call --------------------------------------------------

def test_hf_metric_card_how_to_use_with_one_2d_array():
    # predictions=/references= given one (3, 3) array each: HF's features read it as a list of rows,
    # which, the metric being a sum over maps, scores the same as the whole map.
    predicted = np.array([[2, 2, 3], [8, 2, 4], [3, 255, 2]])
    ground_truth = np.array([[1, 2, 2], [8, 2, 1], [3, 255, 1]])
    out = hf_mean_iou(predictions=predicted, references=ground_truth, num_labels=10, ignore_index=255)
    keep = ground_truth != 255
    matrix = np.bincount(10 * ground_truth[keep] + predicted[keep], minlength=100).reshape(10, 10).astype(float)
    tp, gt, pr = np.diag(matrix), matrix.sum(1), matrix.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        iou, acc = tp / (gt + pr - tp), tp / gt
    np.testing.assert_allclose(out["per_category_iou"], iou)
    np.testing.assert_allclose(out["per_category_accuracy"], acc)
    assert out["mean_iou"] == pytest.approx(np.nanmean(iou))
    assert out["mean_accuracy"] == pytest.approx(np.nanmean(acc))
    assert out["overall_accuracy"] == pytest.approx(tp.sum() / matrix.sum())
    assert out["overall_accuracy"] == pytest.approx(4 / 8)  # 8 evaluated pixels; 2, 8, 2 and 3 right
