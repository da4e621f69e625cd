"""A ``compute_metrics`` for HF transformers' ``Trainer``: low-resolution logits in, HF ``mean_iou`` out.

    from ade20k_metrics.compat import hf_compute_metrics
    trainer = Trainer(model, args, ..., compute_metrics=hf_compute_metrics(num_labels=150, ignore_index=255,
                                                                             reduce_labels=True))

Segmentation models (SegFormer, UperNet, Mask2Former's semantic head ...)
return logits at a quarter of the label size; HF's recipe upsamples them
with ``interpolate(mode="bilinear", align_corners=False)``, takes the argmax
and calls ``evaluate``'s mean_iou.  Here the upsampling, the argmax and the
count are one pass of the kernel (``update_logits(..., resize="bilinear")``,
see core/resize.py): no (N, C, H, W) float buffer.  The result has HF
mean_iou's keys and values ("mean_iou", "mean_accuracy", "overall_accuracy",
"per_category_iou", "per_category_accuracy"), as ``hf_mean_iou`` computes
them; with ``id2label`` the per-category arrays become "iou_<name>" and
"accuracy_<name>" scalars, as in HF's semantic-segmentation example script.

``Trainer(..., batch_eval_metrics=True)`` calls compute_metrics once per batch
with ``compute_result``: the counts accumulate, and the metrics come (and the
counts restart) when ``compute_result`` is True.  Label -100 (the Trainer's
padding between batches of different sizes) is always ignored.
"""
from __future__ import annotations

__all__ = ["HFSegmentationMetrics", "hf_compute_metrics"]

from collections.abc import Mapping

import numpy as np

from ..core.confusion import ConfusionMatrix
from ..core.inputs import as_labels

_TRAINER_PADDING = -100


def _logits_and_labels(eval_pred):
    if hasattr(eval_pred, "predictions"):
        logits, labels = eval_pred.predictions, eval_pred.label_ids
    else:
        logits, labels = eval_pred[0], eval_pred[1]
    if isinstance(logits, (tuple, list)):  # models that return more than the logits: the logits come first
        logits = logits[0]
    if labels is None:
        raise ValueError("EvalPrediction has no label_ids: the evaluation dataset must carry labels")
    return logits, labels


class HFSegmentationMetrics:
    """Callable ``compute_metrics(eval_pred, compute_result=None)`` (see the module docstring)."""

    def __init__(self, num_labels: int, ignore_index: int | None = 255, *, reduce_labels: bool = False,
                 nan_to_num: float | None = None, id2label: Mapping[int, str] | None = None,
                 n_threads: int | None = None):
        self._cm = ConfusionMatrix(num_labels, ignore_index=ignore_index, reduce_zero_label=reduce_labels,
                                   n_threads=n_threads)
        if nan_to_num is not None and (isinstance(nan_to_num, bool) or not isinstance(nan_to_num, (int, float))):
            raise TypeError(f"nan_to_num must be a number or None, got {type(nan_to_num).__name__}")
        self.nan_to_num = nan_to_num
        self.id2label = None if id2label is None else {int(k): str(v) for k, v in dict(id2label).items()}
        if self.id2label is not None and sorted(self.id2label) != list(range(self._cm.num_classes)):
            raise ValueError(f"id2label must name the classes 0 .. {self._cm.num_classes - 1}")

    def _add(self, eval_pred) -> None:
        logits, labels = _logits_and_labels(eval_pred)
        t = as_labels(labels, "label_ids")
        if t.dtype.kind == "i" and (t == _TRAINER_PADDING).any():
            if self._cm.ignore_index is None:
                raise ValueError("label_ids hold the Trainer's padding -100; set ignore_index to ignore it")
            t = np.where(t == _TRAINER_PADDING, self._cm.ignore_index, t)
        same_size = np.ndim(logits) == t.ndim + 1 and tuple(np.shape(logits)[-2:]) == t.shape[-2:]
        self._cm.update_logits(logits, t, resize=None if same_size else "bilinear")

    def result(self) -> dict:
        """HF mean_iou's dict of the counts so far (per-category keys flattened with id2label)."""
        m = self._cm.compute(convention="mmseg")
        out = {
            "mean_iou": np.float64(m.miou),
            "mean_accuracy": np.float64(m.macc),
            "overall_accuracy": np.float64(m.aacc),
            "per_category_iou": np.array(m.iou, dtype=np.float64),
            "per_category_accuracy": np.array(m.acc, dtype=np.float64),
        }
        if self.nan_to_num is not None:
            out = {key: np.nan_to_num(value, nan=self.nan_to_num) for key, value in out.items()}
        if self.id2label is not None:
            accuracy, iou = out.pop("per_category_accuracy"), out.pop("per_category_iou")
            out = {key: float(value) for key, value in out.items()}
            out.update({f"accuracy_{self.id2label[i]}": float(v) for i, v in enumerate(accuracy)})
            out.update({f"iou_{self.id2label[i]}": float(v) for i, v in enumerate(iou)})
        return out

    def __call__(self, eval_pred, compute_result: bool | None = None):
        if compute_result is None:  # the whole evaluation set at once
            self._cm.reset()
            self._add(eval_pred)
            out = self.result()
            self._cm.reset()
            return out
        self._add(eval_pred)
        if not compute_result:
            return {}
        out = self.result()
        self._cm.reset()
        return out


def hf_compute_metrics(num_labels: int, ignore_index: int | None = 255, *, reduce_labels: bool = False,
                       nan_to_num: float | None = None, id2label: Mapping[int, str] | None = None,
                       n_threads: int | None = None) -> HFSegmentationMetrics:
    """A ``compute_metrics`` for ``Trainer``: EvalPrediction(logits (N, C, h, w), labels (N, H, W)) -> mean_iou dict."""
    return HFSegmentationMetrics(num_labels, ignore_index, reduce_labels=reduce_labels, nan_to_num=nan_to_num,
                                 id2label=id2label, n_threads=n_threads)
