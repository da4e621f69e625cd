"""mmseg 1.x's ``IoUMetric`` as an mmengine ``BaseMetric``, counted with our kernel.

    # in an mmseg 1.x config
    custom_imports = dict(imports=["ade20k_metrics.mmseg"], allow_failed_imports=False)
    val_evaluator = dict(type="ADE20KIoUMetric", iou_metrics=["mIoU", "mDice", "mFscore"])

The constructor is mmseg 1.x's (ignore_index, iou_metrics, nan_to_num, beta,
collect_device, output_dir, format_only, prefix) and so are the results:
{"aAcc", "mIoU", "mAcc", "mDice", "mFscore", "mPrecision", "mRecall"} for the
metrics asked for, in percent, ``np.round(x * 100, 2)`` of the NaN-mean over
classes of the per-class values (after ``nan_to_num``, when given); a
per-class table goes to the log.  Importing this module registers the class
as "ADE20KIoUMetric" in mmseg's METRICS registry when mmseg is importable
(else in mmengine's root METRICS, which mmseg's registry falls back to); it
never replaces mmseg's own "IoUMetric".

Each sample adds one small entry to ``self.results``: its (intersection,
union, prediction area, label area) int64 counts per class, mmseg's own
entry layout.  So ``evaluate(size)`` gathers them over ranks and drops the
samples a distributed sampler padded, exactly as mmengine does for mmseg.

Where this deliberately differs from mmseg 1.x:

* Counts are exact int64 and the ratios float64; mmseg sums float32
  ``torch.histc`` histograms (exact only below 2**24 pixels a class) and
  returns np.float32 values.  The rounded numbers agree (as float32) except
  where a value lies within float32 rounding of a rounding boundary.
* A label outside [0, num_classes) that is not ``ignore_index`` (ground truth,
  or a prediction at an evaluated pixel) is a ValueError naming the sample;
  mmseg's ``torch.histc`` drops it from one histogram and miscounts the union.
* Predictions and labels on a GPU are moved to the CPU for counting.
"""
from __future__ import annotations

__all__ = ["IoUMetric", "REGISTERED_NAME", "register"]

import os
import os.path as osp
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
from mmengine.dist import is_main_process
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger, print_log

from ..core.confusion import confusion_matrix
from ..core.inputs import as_labels, is_torch_tensor

REGISTERED_NAME = "ADE20KIoUMetric"
_ALLOWED_METRICS = ("mIoU", "mDice", "mFscore")


def _field(sample, name: str):
    """sample[name] for the dicts mmengine's Evaluator passes, sample.name for data elements."""
    if isinstance(sample, Mapping):
        return sample[name]
    return getattr(sample, name)


def _label_map(x, name: str) -> np.ndarray:
    """A (1, H, W) or (H, W) map as an (H, W) integer array; tensors on a device are copied to the CPU."""
    if is_torch_tensor(x):
        x = x.detach()
        if x.device.type != "cpu":
            x = x.cpu()
    a = as_labels(x, name)
    return a.squeeze()  # as mmseg: data.squeeze()


def _percent(value) -> float:
    return float(np.round(value * 100, 2))


class IoUMetric(BaseMetric):
    """mmseg 1.x's IoUMetric (same arguments and results), counted exactly by the package's kernel."""

    def __init__(self, ignore_index: int = 255, iou_metrics: Sequence[str] = ("mIoU",),
                 nan_to_num: int | None = None, beta: int = 1, collect_device: str = "cpu",
                 output_dir: str | None = None, format_only: bool = False, prefix: str | None = None,
                 **kwargs) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix, **kwargs)
        metrics = [iou_metrics] if isinstance(iou_metrics, str) else list(iou_metrics)
        if not set(metrics).issubset(_ALLOWED_METRICS):
            raise KeyError(f"metrics {metrics} is not supported")  # mmseg raises this at compute time
        self.ignore_index = ignore_index
        self.metrics = metrics
        self.nan_to_num = nan_to_num
        self.beta = beta
        self.output_dir = output_dir
        if self.output_dir and is_main_process():
            os.makedirs(self.output_dir, exist_ok=True)
        self.format_only = format_only

    # -- per batch ----------------------------------------------------------
    def process(self, data_batch, data_samples: Sequence) -> None:
        """Count each sample's (intersection, union, prediction, label) areas into ``self.results``."""
        num_classes = len(self.dataset_meta["classes"])
        entries = []
        for data_sample in data_samples:
            pred = _label_map(_field(_field(data_sample, "pred_sem_seg"), "data"), "pred_sem_seg")
            if not self.format_only:
                label = _label_map(_field(_field(data_sample, "gt_sem_seg"), "data"), "gt_sem_seg")
                entries.append(self.intersect_and_union(pred, label, num_classes, self.ignore_index))
            if self.output_dir is not None:
                self._save_prediction(data_sample, pred)
        self.results.extend(entries)  # the whole batch or none of it

    def _save_prediction(self, data_sample, pred: np.ndarray) -> None:
        from PIL import Image

        basename = osp.splitext(osp.basename(_field(data_sample, "img_path")))[0]
        reduce_zero_label = (data_sample.get("reduce_zero_label", False) if isinstance(data_sample, Mapping)
                             else getattr(data_sample, "reduce_zero_label", False))
        # ADE20K's official format is 1..150 where the model predicts 0..149 (reduce_zero_label).
        mask = pred.astype(np.int64) + (1 if reduce_zero_label else 0)
        Image.fromarray(mask.astype(np.uint8)).save(osp.abspath(osp.join(self.output_dir, f"{basename}.png")))

    @staticmethod
    def intersect_and_union(pred_label, label, num_classes: int, ignore_index: int | None):
        """One map's per-class (intersection, union, prediction area, label area), int64 (num_classes,)."""
        matrix = confusion_matrix(pred_label, label, num_classes, ignore_index=ignore_index)
        intersect = np.diag(matrix).copy()
        pred_area = matrix.sum(axis=0)
        label_area = matrix.sum(axis=1)
        return intersect, pred_area + label_area - intersect, pred_area, label_area

    # -- at the end -----------------------------------------------------------
    def compute_metrics(self, results: list) -> dict[str, float]:
        """{"aAcc", "mIoU", "mAcc", ...} in percent from the gathered per-sample entries."""
        logger: MMLogger = MMLogger.get_current_instance()
        if self.format_only:
            logger.info(f"results are saved to {osp.dirname(self.output_dir)}")
            return {}
        num_classes = len(self.dataset_meta["classes"])
        totals = [np.zeros(num_classes, dtype=np.int64) for _ in range(4)]
        for i, entry in enumerate(results):
            if len(entry) != 4:
                raise ValueError(f"results[{i}] is not (intersect, union, pred_area, label_area)")
            for total, area in zip(totals, entry):
                total += np.asarray(area, dtype=np.int64)
        per_class = self.total_area_to_metrics(*totals, self.metrics, self.nan_to_num, self.beta)

        metrics: dict[str, float] = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # nanmean of an all-NaN column is NaN
            for key, value in per_class.items():
                metrics[key if key == "aAcc" else "m" + key] = _percent(np.nanmean(value))
        per_class.pop("aAcc")
        self._log_table(self.dataset_meta["classes"], per_class, logger)
        return metrics

    @staticmethod
    def total_area_to_metrics(total_area_intersect, total_area_union, total_area_pred_label, total_area_label,
                              metrics=("mIoU",), nan_to_num=None, beta=1) -> dict[str, np.ndarray]:
        """Per-class fractions {"aAcc", "IoU", "Acc", "Dice", "Fscore", "Precision", "Recall"} (float64)."""
        if isinstance(metrics, str):
            metrics = [metrics]
        if not set(metrics).issubset(_ALLOWED_METRICS):
            raise KeyError(f"metrics {list(metrics)} is not supported")
        intersect = np.asarray(total_area_intersect, dtype=np.float64)
        union = np.asarray(total_area_union, dtype=np.float64)
        pred_area = np.asarray(total_area_pred_label, dtype=np.float64)
        label_area = np.asarray(total_area_label, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            ret: dict[str, np.ndarray] = {"aAcc": np.asarray(intersect.sum() / label_area.sum())}
            for metric in metrics:
                if metric == "mIoU":
                    ret["IoU"] = intersect / union
                    ret["Acc"] = intersect / label_area
                elif metric == "mDice":
                    ret["Dice"] = 2 * intersect / (pred_area + label_area)
                    ret["Acc"] = intersect / label_area
                else:
                    precision = intersect / pred_area
                    recall = intersect / label_area
                    ret["Fscore"] = (1 + beta ** 2) * (precision * recall) / ((beta ** 2 * precision) + recall)
                    ret["Precision"] = precision
                    ret["Recall"] = recall
        if nan_to_num is not None:
            ret = {key: np.nan_to_num(value, nan=nan_to_num) for key, value in ret.items()}
        return ret

    @staticmethod
    def _log_table(class_names, per_class: dict[str, np.ndarray], logger) -> None:
        columns = {"Class": [str(n) for n in class_names]}
        columns.update({key: [f"{v:.2f}" for v in np.round(value * 100, 2)] for key, value in per_class.items()})
        widths = {key: max(len(key), *(len(v) for v in values)) for key, values in columns.items()}
        lines = [" | ".join(key.ljust(widths[key]) for key in columns)]
        lines.append("-+-".join("-" * widths[key] for key in columns))
        for row in range(len(columns["Class"])):
            lines.append(" | ".join(columns[key][row].ljust(widths[key]) for key in columns))
        print_log("per class results:", logger)
        print_log("\n" + "\n".join(lines), logger=logger)


def _is_ours(module) -> bool:
    return (getattr(module, "__module__", None) == IoUMetric.__module__
            and getattr(module, "__qualname__", None) == IoUMetric.__qualname__)


def register(registry) -> bool:
    """Add IoUMetric to ``registry`` as "ADE20KIoUMetric" unless that name is taken; True if it is ours now.

    Never forced: mmseg's own "IoUMetric", or anything else already under the
    name, is left as it is.
    """
    existing = registry.module_dict.get(REGISTERED_NAME)
    if existing is not None:
        return _is_ours(existing)
    registry.register_module(name=REGISTERED_NAME, module=IoUMetric)
    return True


def _default_registry():
    try:
        from mmseg.registry import METRICS
    except (ImportError, AssertionError):  # mmseg missing, or its mmcv version check failed
        from mmengine.registry import METRICS
    return METRICS


register(_default_registry())
