"""Counting a benchmark's official files as they are, and its official evaluation's numbers.

``DatasetConfusionMatrix`` is what ``am.datasets.get(name).confusion_matrix()``
returns: a ``ConfusionMatrix`` that takes the dataset's ground truth as the
official files hold it and predictions in the official prediction format
(``pred_train_ids=True``: class ids 0..K-1), and whose ``compute()`` gives
``Metrics`` over the K classes under the official convention.

Datasets counted in their own ids (``space = "raw"``, see
datasets/registry.py) keep the official evaluation's matrix: Cityscapes' over
the 34 labelIds, COCO-Stuff's over the 182 stuffthingmaps ids.  ``matrix`` is
that matrix; ``class_matrix()`` projects it onto the classes, with one extra
prediction column (index K) for predictions of ids that are no class, each a
miss of the true class and nobody's false positive, as in those evaluations.

``official_scores()`` gives the official evaluation's own numbers, computed
the way it computes them (same formulas, same order of floating-point sums):
cityscapesScripts' evalPixelLevelSemanticLabeling (class and category IoU,
and with instance files the instance-weighted iIoU) and COCO-Stuff's
evaluate_performance.py (mIoU, fwIoU, mean and pixel accuracy).
"""
from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np

from ..core import _core, reference
from ..core.confusion import ConfusionMatrix
from ..core.inputs import as_labels, check_pair

# -- the prediction tables ------------------------------------------------------------------------------


class _PredLookup:
    """Official prediction values -> counted ids, with a value >= count_classes for values that are no label
    (the kernel then refuses the pair, and ``explain`` names the value in the file's own numbering)."""

    def __init__(self, table: np.ndarray | None, count_classes: int):
        self.table = table
        self.count_classes = count_classes
        self.dtype = np.uint8 if count_classes < 255 else np.uint16 if count_classes < 65535 else np.int64
        self.bad = int(np.iinfo(self.dtype).max) if self.dtype != np.int64 else -1
        self._by_dtype: dict[str, np.ndarray] = {}

    def __call__(self, pred: np.ndarray) -> np.ndarray:
        if self.table is None:
            return pred
        p = pred
        if p.dtype.kind == "u" and p.dtype.itemsize <= 2:
            lut = self._by_dtype.get(p.dtype.str)
            if lut is None:
                lut = np.full(1 << (8 * p.dtype.itemsize), self.bad, dtype=self.dtype)
                n = min(len(self.table), len(lut))
                lut[:n] = np.where(self.table[:n] >= 0, self.table[:n], self.bad)
                self._by_dtype[p.dtype.str] = lut
            return lut[p]
        values = p.astype(np.int64, copy=False)
        inside = (values >= 0) & (values < len(self.table))
        out = np.full(p.shape, self.bad, dtype=self.dtype)
        mapped = self.table[values[inside]]
        out[inside] = np.where(mapped >= 0, mapped, self.bad)
        return out

    def explain(self, pred: np.ndarray, evaluated: np.ndarray | None = None) -> str | None:
        """The first prediction value that is no label (among ``evaluated`` pixels), as a phrase; None if none."""
        values = np.asarray(pred).astype(np.int64)
        if self.table is None:
            bad = (values < 0) | (values >= self.count_classes)
        else:
            inside = (values >= 0) & (values < len(self.table))
            bad = ~inside
            bad[inside] |= self.table[values[inside]] < 0
        if evaluated is not None:
            bad &= evaluated
        if not bad.any():
            return None
        found = np.unique(values[bad])
        shown = ", ".join(str(int(v)) for v in found[:8]) + (", ..." if len(found) > 8 else "")
        return f"{int(bad.sum())} evaluated pixel(s) hold prediction values that are no label, e.g. {int(found[0])} " \
               f"(values seen: {shown})"


# -- the accumulator -----------------------------------------------------------------------------------


class DatasetConfusionMatrix(ConfusionMatrix):
    """A ``ConfusionMatrix`` for one dataset's official files (see the module docstring)."""

    def __init__(self, dataset, *, pred_train_ids: bool = False, n_threads: int | None = None):
        if not isinstance(pred_train_ids, (bool, np.bool_)):
            raise TypeError(f"pred_train_ids must be a bool, got {type(pred_train_ids).__name__}")
        super().__init__(dataset.count_classes, ignore_index=dataset.ignore_index,
                         reduce_zero_label=dataset.reduce_zero_label, n_threads=n_threads)
        self.dataset = dataset
        self.pred_train_ids = bool(pred_train_ids)
        # None: the values are counted as they are (train-space datasets given class ids).
        table = dataset.pred_train_ids if self.pred_train_ids else dataset.pred_official
        self._pred = _PredLookup(table, dataset.count_classes)
        self._instances = InstanceStats(dataset) if dataset.instance_sizes else None

    # -- counting -------------------------------------------------------------------------------------
    def counted_pred(self, pred) -> np.ndarray:
        """Predictions as the ids this accumulator counts (values that are no label become out of range)."""
        return self._pred(as_labels(pred, "pred"))

    def update(self, pred, target, instances=None) -> DatasetConfusionMatrix:
        """Add one label map (or a batch) as the official files hold them; returns self.

        ``instances``: Cityscapes' ``*_gtFine_instanceIds.png`` content for
        the instance-level scores (iIoU).  All-or-nothing.
        """
        if isinstance(pred, (list, tuple)) and isinstance(target, (list, tuple)):
            return self.update_many(pred, target, instances)
        raw = as_labels(pred, "pred")
        p = self._pred(raw)
        t = as_labels(target, "target")
        check_pair(p, t)
        contributions = self._instance_counts(p, instances)
        try:
            if self.dataset.gt_absent_ids:
                trial = self._trial()
                trial.update(p, t)
                self._check_absent(trial._matrix)
                _core.add_counts(self._matrix, trial._matrix)
            else:
                super().update(p, t)
        except ValueError as e:
            raise self._label_error(raw, t, e) from None
        if contributions:
            self._instances.add_contributions(contributions)
        return self

    def update_many(self, preds, targets, instances=None) -> DatasetConfusionMatrix:
        """``update`` over equally long lists of maps whose sizes may differ (all-or-nothing over the list)."""
        if not isinstance(preds, (list, tuple)) or not isinstance(targets, (list, tuple)):
            preds, targets = [preds], [targets]
            instances = None if instances is None else [instances]
        if len(preds) != len(targets) or (instances is not None and len(instances) != len(preds)):
            raise ValueError("preds, targets (and instances) must be equally long lists")
        trial = self._trial()
        contributions = []
        for i, (pred, target) in enumerate(zip(preds, targets)):
            raw = as_labels(pred, "pred")
            p = self._pred(raw)
            t = as_labels(target, "target")
            check_pair(p, t)
            contributions += self._instance_counts(p, None if instances is None else instances[i])
            try:
                trial.update(p, t)
            except ValueError as e:
                raise self._label_error(raw, t, e) from None
        self._check_absent(trial._matrix)
        _core.add_counts(self._matrix, trial._matrix)
        if contributions:
            self._instances.add_contributions(contributions)
        return self

    def _label_error(self, raw_pred: np.ndarray, target: np.ndarray, cause: ValueError) -> ValueError:
        """The kernel's refusal restated in the files' own numbering where a prediction value is at fault."""
        rows = reference.target_rows(target, self.num_classes, self.ignore_index, self.reduce_zero_label)
        if (rows == reference.INVALID).any():
            return cause
        detail = self._pred.explain(raw_pred, rows >= 0)
        if detail is None:
            return cause
        fmt = self.dataset.encodings["train_ids" if self.pred_train_ids else "prediction"]
        return ValueError(f"pred: {detail}; {self.dataset.name} predictions hold {fmt}")

    def _trial(self) -> ConfusionMatrix:
        """A plain accumulator with this one's counting settings, to count into before committing."""
        return ConfusionMatrix(self.num_classes, ignore_index=self.ignore_index,
                               reduce_zero_label=self.reduce_zero_label, n_threads=self.n_threads)

    def _instance_counts(self, p: np.ndarray, instances) -> list:
        if instances is None:
            return []
        if self._instances is None:
            raise ValueError(f"{self.dataset.name} has no instance-level scores; pass no instances")
        return self._instances.count(p, as_labels(instances, "instances"))

    def update_logits(self, logits, target, *, axis=None):
        if self.dataset.space == "raw" or self._pred.table is not None:
            raise NotImplementedError(f"update_logits counts class ids; {self.dataset.name}'s accumulator counts the "
                                      "official prediction format: pass the argmax through update()")
        return super().update_logits(logits, target, axis=axis)

    def update_samples(self, indices, preds, targets):
        if self.dataset.space == "raw" or self._pred.table is not None:
            raise NotImplementedError(f"update_samples is not available for {self.dataset.name}'s accumulator")
        return super().update_samples(indices, preds, targets)

    def _check_absent(self, counts: np.ndarray) -> None:
        if not self.dataset.gt_absent_ids:
            return
        rows = counts[list(self.dataset.gt_absent_ids)].sum(axis=1)
        if rows.any():
            value = self.dataset.gt_absent_ids[int(np.flatnonzero(rows)[0])]
            raise ValueError(f"target holds {value}, an id {self.dataset.name}'s ground truth never holds (one of "
                             f"the ids without annotations: {', '.join(map(str, self.dataset.gt_absent_ids))})")

    # -- results --------------------------------------------------------------------------------------
    def class_matrix(self) -> np.ndarray:
        """The counts over the K classes: (K, K), or (K + 1, K + 1) for raw-space datasets, whose last
        column holds predictions of ids that are no class (a miss, nobody's false positive); its last row is 0."""
        ds = self.dataset
        if ds.space != "raw":
            return self._matrix.copy()
        k = ds.num_classes
        out = np.zeros((k + 1, k + 1), dtype=np.int64)
        rows = ds.gt_to_class >= 0
        np.add.at(out, (ds.gt_to_class[rows][:, None], ds.pred_to_class[None, :]), self._matrix[rows])
        return out

    def compute(self, convention: str | None = None, beta: float = 1.0, **options):
        """``Metrics`` over the K classes under ``convention`` (default: the dataset's official one)."""
        convention = self.dataset.convention if convention is None else convention
        if self.dataset.space != "raw":
            return super().compute(convention, beta, **options)
        k = self.dataset.num_classes
        projected = ConfusionMatrix(k + 1, ignore_index=None)
        _core.add_counts(projected._matrix, self.class_matrix())
        return _drop_void_class(projected.compute(convention, beta, **options), k)

    def official_scores(self) -> dict:
        """The official evaluation's own numbers (see the module docstring); keys as that evaluation names them."""
        if self.dataset.name == "cityscapes":
            return cityscapes_scores(self.dataset, self._matrix, self._instances)
        if self.dataset.name == "coco-stuff-171":
            return coco_stuff_scores(self._matrix)
        raise ValueError(f"{self.dataset.name} has no official numbers beyond compute(): use compute()")

    # -- combining and state --------------------------------------------------------------------------
    def _settings(self) -> tuple:
        return (*super()._settings(), self.dataset.name)

    def _empty_copy(self) -> DatasetConfusionMatrix:
        return DatasetConfusionMatrix(self.dataset, pred_train_ids=self.pred_train_ids, n_threads=self.n_threads)

    def merge(self, other) -> DatasetConfusionMatrix:
        if isinstance(other, DatasetConfusionMatrix) and (self._instances is None) != (other._instances is None):
            raise ValueError("cannot merge accumulators of different datasets")
        super().merge(other)
        if self._instances is not None and isinstance(other, DatasetConfusionMatrix):
            self._instances.add(other._instances.values)
        return self

    def copy(self) -> DatasetConfusionMatrix:
        new = self._empty_copy()
        return new.merge(self)

    def reset(self) -> DatasetConfusionMatrix:
        super().reset()
        if self._instances is not None:
            self._instances.values[...] = 0
        return self

    def __eq__(self, other) -> bool:
        if not isinstance(other, ConfusionMatrix):
            return NotImplemented
        if not super().__eq__(other):
            return False
        mine = None if self._instances is None else self._instances.values
        theirs = getattr(other, "_instances", None)
        theirs = None if theirs is None else theirs.values
        return (mine is None) == (theirs is None) and (mine is None or np.array_equal(mine, theirs))

    __hash__ = None

    def state_dict(self) -> dict:
        state = super().state_dict()
        state["dataset"] = self.dataset.name
        state["pred_train_ids"] = self.pred_train_ids
        if self._instances is not None:
            state["instance_stats"] = self._instances.values.copy()
        return state

    @classmethod
    def from_state_dict(cls, state, *, n_threads: int | None = None):
        from ..datasets import registry

        if "dataset" not in state:
            raise ValueError("state has no 'dataset': it is not a dataset accumulator's")
        new = cls(registry.get(state["dataset"]), pred_train_ids=bool(state.get("pred_train_ids", False)),
                  n_threads=n_threads)
        base = ConfusionMatrix.from_state_dict(state, n_threads=n_threads)
        if base._settings() != ConfusionMatrix._settings(new):
            raise ValueError(f"state settings {base._settings()} do not match {state['dataset']}'s")
        _core.add_counts(new._matrix, base._matrix)
        if new._instances is not None and "instance_stats" in state:
            values = np.asarray(state["instance_stats"], dtype=np.float64)
            if values.shape != new._instances.values.shape:
                raise ValueError(f"instance_stats has shape {values.shape}, expected {new._instances.values.shape}")
            new._instances.values[...] = values
        return new

    def save(self, path) -> None:
        raise NotImplementedError("a dataset accumulator is saved with state_dict() (or pickle); "
                                  "DatasetConfusionMatrix.from_state_dict rebuilds it")

    @classmethod
    def load(cls, path, *, n_threads: int | None = None):
        raise NotImplementedError("rebuild a dataset accumulator with DatasetConfusionMatrix.from_state_dict")

    def sync(self, group=None, *, dataset_size: int | None = None):
        if self._instances is not None and dataset_size is not None:
            raise NotImplementedError("sync(dataset_size=...) does not drop repeated samples from the "
                                      "instance-level counts; sync without it")
        super().sync(group, dataset_size=dataset_size)
        if self._instances is not None:
            self._instances.all_reduce(group)
        return self

    def __repr__(self) -> str:
        return f"DatasetConfusionMatrix({self.dataset.name!r}, pred_train_ids={self.pred_train_ids}, pixels={self.total})"


def _drop_void_class(m, k: int):
    """``Metrics`` of a (K + 1)-class matrix without its last (void) class: per-class arrays cut to K,
    means taken again over the K (each array's NaNs mark what the convention leaves out)."""
    def mean(a: np.ndarray) -> float:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return float(np.nanmean(a)) if a.size and not np.isnan(a).all() else float("nan")

    cut = {name: np.array(getattr(m, name)[:k]) for name in m.PER_CLASS}
    for a in cut.values():
        a.flags.writeable = False
    miou = mean(cut["iou"]) if m.matrix.sum() > 0 else float("nan")
    macc = mean(cut["acc"]) if m.matrix.sum() > 0 else float("nan")
    means = {"miou": miou, "macc": macc, "mrecall": macc}
    if m.matrix.sum() > 0:
        means.update(mprecision=mean(cut["precision"]), mdice=mean(cut["dice"]), mfscore=mean(cut["fscore"]))
    return dataclasses.replace(m, **cut, **means, score=(m.aacc + miou) / 2)


# -- Cityscapes' instance-level counts ---------------------------------------------------------------------


class InstanceStats:
    """cityscapesScripts' instance statistics: per class with instances and per all-instance category,
    tp, fn and their instance-size-weighted sums (rows in ``self.rows`` order)."""

    FIELDS = ("tp", "fn", "tpWeighted", "fnWeighted")

    def __init__(self, dataset):
        self.dataset = dataset
        labels = [lab for lab in dataset.raw_labels if lab.id >= 0]
        self.by_id = {lab.id: lab for lab in labels}
        self.classes = [lab.name for lab in dataset.raw_labels if lab.has_instances and not lab.ignore_in_eval]
        # Categories all of whose labels (with an id) have instances, and those labels' ids, in label order.
        order, members, complete = [], {}, {}
        for lab in dataset.raw_labels:
            if lab.category not in members:
                order.append(lab.category)
                members[lab.category], complete[lab.category] = [], True
            if lab.id < 0 or not complete[lab.category]:
                continue
            if not lab.has_instances:
                complete[lab.category] = False
                continue
            members[lab.category].append(lab.id)
        self.categories = [c for c in order if complete[c]]
        self.category_ids = {c: members[c] for c in self.categories}
        self.rows = self.classes + [f"category:{c}" for c in self.categories]
        self.values = np.zeros((len(self.rows), 4), dtype=np.float64)
        self._in_category = {}
        for c in self.categories:
            lut = np.zeros(dataset.count_classes, dtype=bool)
            lut[self.category_ids[c]] = True
            self._in_category[c] = lut

    def count(self, pred: np.ndarray, instances: np.ndarray) -> list[tuple[int, int, int, float, float]]:
        """One image's (or batch's) contributions, in the order cityscapesScripts adds them:
        (row, tp, fn, tp * weight, fn * weight) per instance and per its category; raises on bad ids."""
        if instances.shape != pred.shape:
            raise ValueError(f"instances must have the prediction's shape {pred.shape}, got {instances.shape}")
        if pred.ndim > 2:
            out = []
            for p, i in zip(pred.reshape(-1, *pred.shape[-2:]), instances.reshape(-1, *instances.shape[-2:])):
                out += self.count(p, i)
            return out
        selected = instances > 1000          # cityscapesScripts: np.unique(instanceNp[instanceNp > 1000])
        ids = instances[selected].astype(np.int64)
        if ids.size == 0:
            return []
        p = pred[selected].astype(np.int64)
        uniq, inverse = np.unique(ids, return_inverse=True)
        label_ids = uniq // 1000
        size = np.bincount(inverse, minlength=len(uniq))
        hits = np.bincount(inverse[p == label_ids[inverse]], minlength=len(uniq))
        in_range = (p >= 0) & (p < self.dataset.count_classes)
        category_hits = {}
        for c, lut in self._in_category.items():
            inside = np.zeros(p.shape, dtype=bool)
            inside[in_range] = lut[p[in_range]]
            category_hits[c] = np.bincount(inverse[inside], minlength=len(uniq))
        sizes = self.dataset.instance_sizes
        out = []
        for j, inst in enumerate(uniq.tolist()):
            lab = self.by_id.get(int(label_ids[j]))
            if lab is None:
                raise ValueError(f"instance id {inst} names labelId {int(label_ids[j])}, which does not exist")
            if lab.ignore_in_eval:
                continue
            if lab.name not in sizes:
                raise ValueError(f"instance id {inst} is an instance of {lab.name!r}, a label without instances")
            inst_size = int(size[j])
            tp = int(hits[j])
            weight = sizes[lab.name] / float(inst_size)
            out.append((self.rows.index(lab.name), tp, inst_size - tp, float(tp) * weight,
                        float(inst_size - tp) * weight))
            if lab.category in self.category_ids:
                cat_tp = int(category_hits[lab.category][j])
                out.append((self.rows.index(f"category:{lab.category}"), cat_tp, inst_size - cat_tp,
                            float(cat_tp) * weight, float(inst_size - cat_tp) * weight))
        return out

    def add_contributions(self, contributions) -> None:
        """Add each contribution to the running sums one by one, as the script does (same float rounding)."""
        rows = self.values.tolist()
        for row, tp, fn, tp_w, fn_w in contributions:
            r = rows[row]
            r[0] += tp
            r[1] += fn
            r[2] += tp_w
            r[3] += fn_w
        self.values[...] = rows

    def add(self, values: np.ndarray) -> None:
        """Add another accumulator's sums (merging ranks or batches)."""
        self.values += values

    def all_reduce(self, group=None) -> None:
        import torch
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size(group) == 1:
            return
        tensor = torch.from_numpy(self.values.copy())
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM, group=group)
        self.values[...] = tensor.numpy()

    def get(self, row: str) -> dict:
        return dict(zip(self.FIELDS, self.values[self.rows.index(row)].tolist()))


# -- cityscapesScripts' scores ----------------------------------------------------------------------------

def cityscapes_scores(dataset, matrix: np.ndarray, instances: InstanceStats | None) -> dict:
    """evalPixelLevelSemanticLabeling's result dict (classScores, classInstScores, categoryScores,
    categoryInstScores and their averages) from its 34 x 34 labelId matrix and instance statistics."""
    labels = [lab for lab in dataset.raw_labels if lab.id >= 0]
    eval_ids = [lab.id for lab in labels]
    by_id = {lab.id: lab for lab in labels}
    conf = np.asarray(matrix, dtype=np.int64)
    categories = []
    for lab in dataset.raw_labels:
        if lab.category not in categories:
            categories.append(lab.category)

    def fp_of(columns, skip) -> int:
        rows = [i for i in eval_ids if not by_id[i].ignore_in_eval and not skip(i)]
        return int(conf[np.ix_(rows, columns)].sum()) if rows and columns else 0

    def ratio(tp, fp, fn):
        denom = tp + fp + fn
        return float("nan") if denom == 0 else float(tp) / denom

    class_scores, class_inst = {}, {}
    for i in eval_ids:
        lab = by_id[i]
        if lab.ignore_in_eval:
            class_scores[lab.name] = class_inst[lab.name] = float("nan")
            continue
        tp = int(conf[i, i])
        fn = int(conf[i, :].sum()) - tp
        fp = fp_of([i], lambda j, i=i: j == i)
        class_scores[lab.name] = ratio(tp, fp, fn)
        if instances is None or lab.name not in instances.classes:
            class_inst[lab.name] = float("nan")
        else:
            s = instances.get(lab.name)
            class_inst[lab.name] = ratio_weighted(s["tpWeighted"], fp, s["fnWeighted"])

    category_scores, category_inst = {}, {}
    for c in categories:
        ids = [lab.id for lab in dataset.raw_labels if lab.category == c and not lab.ignore_in_eval and lab.id in eval_ids]
        if not ids:
            category_scores[c] = float("nan")
        else:
            tp = int(conf[np.ix_(ids, ids)].sum())
            fn = int(conf[ids, :].sum()) - tp
            fp = fp_of(ids, lambda j, c=c: by_id[j].category == c)
            category_scores[c] = ratio(tp, fp, fn)
        if instances is None or c not in instances.category_ids:
            category_inst[c] = float("nan")
        else:
            s = instances.get(f"category:{c}")
            fp = fp_of(instances.category_ids[c], lambda j, c=c: by_id[j].category == c)
            category_inst[c] = ratio_weighted(s["tpWeighted"], fp, s["fnWeighted"])

    return {
        "classScores": class_scores,
        "classInstScores": class_inst,
        "categoryScores": category_scores,
        "categoryInstScores": category_inst,
        "averageScoreClasses": score_average(class_scores),
        "averageScoreInstClasses": score_average(class_inst),
        "averageScoreCategories": score_average(category_scores),
        "averageScoreInstCategories": score_average(category_inst),
    }


def ratio_weighted(tp: float, fp: int, fn: float) -> float:
    denom = (tp + fp) + fn  # the script's order: a float, plus an integer count, plus a float
    return float("nan") if denom == 0 else float(tp) / denom


def score_average(scores: dict) -> float:
    """cityscapesScripts' getScoreAverage: the mean of the non-NaN scores, summed in the dict's order."""
    total, n = 0.0, 0
    for value in scores.values():
        if not math.isnan(value):
            n += 1
            total += value
    return float("nan") if n == 0 else total / n


# -- COCO-Stuff's evaluate_performance.py -----------------------------------------------------------------

def coco_stuff_scores(matrix: np.ndarray) -> dict:
    """evaluate_performance.py's _computeMetrics on the 182 x 182 matrix: miou, fwiou, macc, pacc (fractions),
    and ious / maccs per stuffthingmaps id (NaN where the id has no ground truth)."""
    confusion = np.asarray(matrix, dtype=np.float64)
    total = confusion.sum()
    n = confusion.shape[0]
    ious, maccs = np.full(n, np.nan), np.full(n, np.nan)
    if total <= 0:
        return {"miou": float("nan"), "fwiou": float("nan"), "macc": float("nan"), "pacc": float("nan"),
                "ious": ious.tolist(), "maccs": maccs.tolist()}
    tp = np.diagonal(confusion)
    pos_pred = confusion.sum(axis=0)
    pos_gt = confusion.sum(axis=1)
    valid = pos_gt > 0
    ious_valid = valid & (pos_gt + pos_pred - tp > 0)
    ious[ious_valid] = tp[ious_valid] / (pos_gt[ious_valid] + pos_pred[ious_valid] - tp[ious_valid])
    maccs[valid] = tp[valid] / pos_gt[valid]
    freqs = pos_gt / total
    return {"miou": float(np.mean(ious[ious_valid])), "fwiou": float(np.sum(ious[ious_valid] * freqs[ious_valid])),
            "macc": float(np.mean(maccs[valid])), "pacc": float(tp.sum() / total),
            "ious": ious.tolist(), "maccs": maccs.tolist()}
