"""compat.hf_compute_metrics: HF transformers' Trainer compute_metrics on low-resolution logits.

Held against HF's recipe (run_semantic_segmentation.py): interpolate(bilinear,
align_corners=False) to the label size, argmax, then mean_iou (here
compat.hf_mean_iou, itself tested against HF evaluate in test_compat.py).
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from ade20k_metrics.compat import hf_compute_metrics, hf_mean_iou

torch = pytest.importorskip("torch")
F = torch.nn.functional

KEYS = ["mean_iou", "mean_accuracy", "overall_accuracy", "per_category_iou", "per_category_accuracy"]


def _eval_prediction(seed, n=3, k=6, h=8, w=10, hh=32, ww=40, background=True):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, k, h, w, generator=g).numpy()
    labels = torch.randint(0, k + 1 if background else k, (n, hh, ww), generator=g).numpy()
    labels[:, :2] = 255
    return SimpleNamespace(predictions=logits, label_ids=labels)


def _hf_recipe(pred, k, ignore_index, reduce_labels):
    up = F.interpolate(torch.from_numpy(pred.predictions), size=pred.label_ids.shape[-2:], mode="bilinear",
                       align_corners=False)
    return hf_mean_iou(list(up.argmax(1).numpy()), list(pred.label_ids), num_labels=k, ignore_index=ignore_index,
                       reduce_labels=reduce_labels)


def _same(got, want):
    assert list(got) == list(want)
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-12, equal_nan=True, err_msg=key)


@pytest.mark.parametrize("reduce_labels", [False, True])
def test_same_dict_as_hfs_recipe(reduce_labels):
    pred = _eval_prediction(0)
    k = 6 if reduce_labels else 7
    if not reduce_labels:
        pred.predictions = np.concatenate([pred.predictions, pred.predictions[:, :1] - 1], axis=1)
    got = hf_compute_metrics(k, 255, reduce_labels=reduce_labels)(pred)
    _same(got, _hf_recipe(pred, k, 255, reduce_labels))


def test_tuple_predictions_float16_and_plain_tuples():
    pred = _eval_prediction(1, background=False)
    want = _hf_recipe(pred, 6, 255, False)
    metrics = hf_compute_metrics(6)
    _same(metrics((pred.predictions, pred.label_ids)), want)
    _same(metrics(SimpleNamespace(predictions=(pred.predictions, "hidden"), label_ids=pred.label_ids)), want)
    half = pred.predictions.astype(np.float16)
    want16 = _hf_recipe(SimpleNamespace(predictions=half.astype(np.float32), label_ids=pred.label_ids), 6, 255, False)
    _same(metrics((half, pred.label_ids)), want16)


def test_batch_eval_metrics_accumulates():
    preds = [_eval_prediction(s, n=2, background=False) for s in (2, 3)]
    metrics = hf_compute_metrics(6)
    assert metrics(preds[0], compute_result=False) == {}
    got = metrics(preds[1], compute_result=True)
    whole = SimpleNamespace(predictions=np.concatenate([p.predictions for p in preds]),
                            label_ids=np.concatenate([p.label_ids for p in preds]))
    _same(got, _hf_recipe(whole, 6, 255, False))
    _same(metrics(preds[0], compute_result=True), _hf_recipe(preds[0], 6, 255, False))  # restarted


def test_trainer_padding_id2label_and_same_size_logits():
    pred = _eval_prediction(4, background=False, hh=8, ww=10)  # logits already at label size
    pred.label_ids[:, -1] = -100
    names = {i: f"c{i}" for i in range(6)}
    got = hf_compute_metrics(6, id2label=names, nan_to_num=0)(pred)
    labels = np.where(pred.label_ids == -100, 255, pred.label_ids)
    want = hf_mean_iou(list(pred.predictions.argmax(1)), list(labels), 6, 255, nan_to_num=0)
    assert got["mean_iou"] == pytest.approx(want["mean_iou"], rel=1e-12)
    assert [key for key in got if key.startswith("iou_")] == [f"iou_c{i}" for i in range(6)]
    assert got["accuracy_c3"] == pytest.approx(want["per_category_accuracy"][3], rel=1e-12)
    assert all(isinstance(v, float) for v in got.values())


def test_with_transformers_eval_prediction():
    transformers = pytest.importorskip("transformers")
    pred = _eval_prediction(5, background=False)
    ep = transformers.EvalPrediction(predictions=pred.predictions, label_ids=pred.label_ids)
    _same(hf_compute_metrics(6)(ep), _hf_recipe(pred, 6, 255, False))


def test_errors():
    pred = _eval_prediction(6, background=False)
    with pytest.raises(ValueError, match="classes"):
        hf_compute_metrics(5)(pred)
    with pytest.raises(ValueError, match="label_ids"):
        hf_compute_metrics(6)(SimpleNamespace(predictions=pred.predictions, label_ids=None))
    with pytest.raises(ValueError, match="id2label"):
        hf_compute_metrics(6, id2label={0: "a"})
