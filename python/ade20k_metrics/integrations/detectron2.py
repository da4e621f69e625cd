"""detectron2's ``SemSegEvaluator`` (detectron2/evaluation/sem_seg_evaluation.py), counted with our kernel.

    evaluator = SemSegEvaluator(num_classes=150, ignore_label=255, class_names=names,
                                input_file_to_gt_file={img: gt_png, ...})
    # or, with detectron2 installed and the dataset registered: SemSegEvaluator("ade20k_sem_seg_val")
    inference_on_dataset(model, loader, evaluator)["sem_seg"]["mIoU"]

The DatasetEvaluator protocol (``reset``, ``process(inputs, outputs)``,
``evaluate``) and detectron2's result: {"sem_seg": {"mIoU", "fwIoU",
"IoU-<name>"..., "mACC", "pACC", "ACC-<name>"...}} in percent (100 * x,
unrounded), with detectron2's rules: a class counts in mIoU and mACC only
where it has ground-truth pixels (its IoU-/ACC- entries are NaN otherwise),
fwIoU weighs each IoU by the class's share of ground-truth pixels, pACC is
the share of evaluated pixels predicted right.

``outputs[i]["sem_seg"]`` are (C, H, W) scores: on the CPU (NumPy or torch,
float32/float16/bfloat16) their argmax is fused into the count, elsewhere
(a GPU tensor, float64) the argmax is taken where they are and only the
labels move.  The ground truth is read from ``input_file_to_gt_file[
inputs[i]["file_name"]]`` with ``sem_seg_loading_fn(path, dtype=int)``, as in
detectron2.  detectron2 itself is imported only when ``dataset_name`` is given
and detectron2 is importable: then its catalogs supply the file table, the
class names and the ignore label (explicit arguments take precedence).

Distributed: with ``distributed=True`` and torch.distributed initialised,
``evaluate`` gathers every rank's matrix (and predictions) to all ranks,
as detectron2's ``all_gather``; the main rank returns the result, the others
None.  No BoundaryIoU keys: detectron2's erode the whole label map; the
package's boundary metrics (``ConfusionMatrix(boundary=...)``) are the
correct ones.

Where this deliberately differs from detectron2: a ground-truth label
outside [0, num_classes) that is not ``ignore_label`` is a ValueError (in
detectron2 a crash in ``np.bincount``'s reshape or a silent miscount);
``process`` is all-or-nothing over its batch; nothing is averaged over an
empty set with a RuntimeWarning (the mean is NaN quietly).
"""
from __future__ import annotations

__all__ = ["SemSegEvaluator", "load_image_into_numpy_array"]

import itertools
import json
import logging
import os
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from ..core.confusion import ConfusionMatrix
from ..core.inputs import SCORE_TYPES, check_num_classes, is_torch_tensor


def load_image_into_numpy_array(filename, dtype=None) -> np.ndarray:
    """detectron2's default loader: the image's stored values as an array of ``dtype``."""
    from PIL import Image

    with open(filename, "rb") as f:
        return np.asarray(Image.open(f), dtype=dtype)


def _detectron2_catalogs():
    try:
        from detectron2.data import DatasetCatalog, MetadataCatalog
    except ImportError:
        return None
    return DatasetCatalog, MetadataCatalog


def _torch_distributed():
    """torch.distributed when it is initialised with more than one rank, else None."""
    try:
        import torch.distributed as dist
    except ImportError:
        return None
    if not dist.is_available() or not dist.is_initialized() or dist.get_world_size() == 1:
        return None
    return dist


class SemSegEvaluator:
    """detectron2's SemSegEvaluator: same protocol and result dict, without needing detectron2."""

    def __init__(self, dataset_name: str | None = None, distributed: bool = True, output_dir: str | None = None, *,
                 num_classes: int | None = None, ignore_label: int | None = 255,
                 class_names: Sequence[str] | None = None,
                 input_file_to_gt_file: Mapping[str, str] | Callable[[str], str] | None = None,
                 sem_seg_loading_fn: Callable = load_image_into_numpy_array):
        self._logger = logging.getLogger(__name__)
        self._dataset_name = dataset_name
        self._distributed = bool(distributed)
        self._output_dir = output_dir
        self._contiguous_id_to_dataset_id = None
        catalogs = _detectron2_catalogs() if dataset_name is not None else None
        if catalogs is not None:
            dataset_catalog, metadata_catalog = catalogs
            if input_file_to_gt_file is None:
                input_file_to_gt_file = {r["file_name"]: r["sem_seg_file_name"]
                                         for r in dataset_catalog.get(dataset_name)}
            meta = metadata_catalog.get(dataset_name)
            if class_names is None:
                class_names = list(meta.stuff_classes)
            ignore_label = getattr(meta, "ignore_label", ignore_label)
            c2d = getattr(meta, "stuff_dataset_id_to_contiguous_id", None)
            if c2d is not None:
                self._contiguous_id_to_dataset_id = {v: k for k, v in c2d.items()}
        if num_classes is None:
            if class_names is None:
                raise ValueError("SemSegEvaluator needs num_classes or class_names (or a dataset_name that "
                                 "detectron2's MetadataCatalog knows, with detectron2 installed)")
            num_classes = len(class_names)
        self._num_classes = check_num_classes(num_classes)
        if class_names is None:
            class_names = [str(c) for c in range(self._num_classes)]
        self._class_names = [str(n) for n in class_names]
        if len(self._class_names) != self._num_classes:
            raise ValueError(f"{len(self._class_names)} class names for num_classes={self._num_classes}")
        if input_file_to_gt_file is None:
            raise ValueError("SemSegEvaluator needs input_file_to_gt_file ({input file_name: ground-truth file}) "
                             "or a dataset_name registered in detectron2's DatasetCatalog")
        self.input_file_to_gt_file = input_file_to_gt_file
        self._ignore_label = ignore_label
        self.sem_seg_loading_fn = sem_seg_loading_fn
        self.reset()

    # -- the DatasetEvaluator protocol ------------------------------------------
    def reset(self) -> None:
        self._cm = ConfusionMatrix(self._num_classes, ignore_index=self._ignore_label)
        self._predictions: list = []

    def _gt_file(self, file_name: str) -> str:
        table = self.input_file_to_gt_file
        if callable(table) and not isinstance(table, Mapping):
            return table(file_name)
        try:
            return table[file_name]
        except KeyError:
            raise KeyError(f"no ground-truth file for input {file_name!r} in input_file_to_gt_file") from None

    def _count(self, batch: ConfusionMatrix, scores, gt: np.ndarray):
        """Count one image into ``batch``; returns the (H, W) predicted labels when they were made."""
        if isinstance(scores, Mapping):
            scores = scores["sem_seg"]
        if is_torch_tensor(scores):
            fused = (scores.device.type == "cpu" and str(scores.dtype).split(".")[-1] in SCORE_TYPES
                     and scores.ndim == 3 and scores.shape[0] == self._num_classes)
            if not fused:
                pred = scores.argmax(dim=0).cpu() if scores.ndim == 3 else scores.cpu()
                batch.update(pred, gt)
                return pred.numpy()
        else:
            scores = np.asarray(scores)
            if not (scores.dtype.kind == "f" and scores.dtype.itemsize in (2, 4)
                    and scores.ndim == 3 and scores.shape[0] == self._num_classes):
                pred = scores.argmax(axis=0) if scores.ndim == 3 else scores
                batch.update(pred, gt)
                return pred
        batch.update_logits(scores, gt, axis=0)
        return None

    def process(self, inputs, outputs) -> None:
        """Add each image's (ground truth, argmax of outputs[i]["sem_seg"]) pairs; all-or-nothing."""
        batch = ConfusionMatrix(self._num_classes, ignore_index=self._ignore_label)
        predictions = []
        for image, output in zip(inputs, outputs):
            gt = np.asarray(self.sem_seg_loading_fn(self._gt_file(image["file_name"]), dtype=int))
            pred = self._count(batch, output, gt)
            if self._output_dir:
                if pred is None:
                    scores = output["sem_seg"] if isinstance(output, Mapping) else output
                    pred = scores.argmax(0)
                    pred = pred.numpy() if is_torch_tensor(pred) else np.asarray(pred)
                predictions.extend(self.encode_json_sem_seg(pred, image["file_name"]))
        self._cm.merge(batch)
        self._predictions.extend(predictions)

    def evaluate(self):
        """{"sem_seg": {...}} on the main rank (None on the others when distributed)."""
        matrix = self._cm.matrix.copy()
        predictions = self._predictions
        dist = _torch_distributed() if self._distributed else None
        if dist is not None:
            gathered: list = [None] * dist.get_world_size()
            dist.all_gather_object(gathered, (matrix, predictions))
            if dist.get_rank() != 0:
                return None
            matrix = sum((m for m, _ in gathered), np.zeros_like(matrix))
            predictions = list(itertools.chain.from_iterable(p for _, p in gathered))

        if self._output_dir:
            os.makedirs(self._output_dir, exist_ok=True)
            with open(os.path.join(self._output_dir, "sem_seg_predictions.json"), "w") as f:
                f.write(json.dumps(predictions))

        res = self.metrics_from_matrix(matrix, self._class_names)
        if self._output_dir:
            import torch

            with open(os.path.join(self._output_dir, "sem_seg_evaluation.pth"), "wb") as f:
                torch.save(res, f)
        results = OrderedDict({"sem_seg": res})
        self._logger.info(results)
        return results

    @staticmethod
    def metrics_from_matrix(matrix: np.ndarray, class_names: Sequence[str]) -> dict:
        """detectron2's numbers from a (K, K) confusion matrix (rows = ground truth, columns = prediction)."""
        m = np.asarray(matrix)
        k = m.shape[0]
        tp = np.diag(m).astype(np.float64)
        pos_gt = m.sum(axis=1).astype(np.float64)
        pos_pred = m.sum(axis=0).astype(np.float64)
        acc = np.full(k, np.nan)
        iou = np.full(k, np.nan)
        with np.errstate(divide="ignore", invalid="ignore"):
            class_weights = pos_gt / pos_gt.sum()
            acc_valid = pos_gt > 0
            acc[acc_valid] = tp[acc_valid] / pos_gt[acc_valid]
            union = pos_gt + pos_pred - tp
            iou_valid = acc_valid & (union > 0)
            iou[iou_valid] = tp[iou_valid] / union[iou_valid]
            macc = np.sum(acc[acc_valid]) / np.sum(acc_valid)
            miou = np.sum(iou[iou_valid]) / np.sum(iou_valid)
            fiou = np.sum(iou[iou_valid] * class_weights[iou_valid])
            pacc = np.sum(tp) / np.sum(pos_gt)
        res = {"mIoU": 100 * miou, "fwIoU": 100 * fiou}
        for i, name in enumerate(class_names):
            res[f"IoU-{name}"] = 100 * iou[i]
        res["mACC"] = 100 * macc
        res["pACC"] = 100 * pacc
        for i, name in enumerate(class_names):
            res[f"ACC-{name}"] = 100 * acc[i]
        return res

    def encode_json_sem_seg(self, sem_seg: np.ndarray, input_file_name: str) -> list[dict]:
        """COCO-stuff results: one RLE-encoded mask per predicted label (needs pycocotools, as detectron2)."""
        import pycocotools.mask as mask_util

        json_list = []
        for label in np.unique(sem_seg):
            if self._contiguous_id_to_dataset_id is not None:
                if label not in self._contiguous_id_to_dataset_id:
                    raise ValueError(f"label {label} is not in the metadata of {self._dataset_name}")
                dataset_id = self._contiguous_id_to_dataset_id[label]
            else:
                dataset_id = int(label)
            mask = (sem_seg == label).astype(np.uint8)
            rle = mask_util.encode(np.array(mask[:, :, None], order="F"))[0]
            rle["counts"] = rle["counts"].decode("utf-8")
            json_list.append({"file_name": input_file_name, "category_id": dataset_id, "segmentation": rle})
        return json_list
