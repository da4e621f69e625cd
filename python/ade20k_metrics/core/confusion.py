"""The confusion matrix: one-shot ``confusion_matrix`` and the ``ConfusionMatrix`` accumulator."""
from __future__ import annotations

import operator
import os
import tempfile
from collections.abc import Mapping

import numpy as np

from ..metrics.compute import compute_metrics
from . import _core
from .inputs import as_labels, check_ignore_index, check_num_classes, check_pair, label_pairs
from .distributed import sync_matrix
from .kernel import _KERNEL_OPTIONS, count
from .logits import update_logits
from .resize import update_resized_logits
from .samples import update_samples
from .threads import resolve_threads

def _ragged(preds, targets) -> bool:
    """Whether two lists hold label maps (not scalars) of more than one shape."""
    shapes = {np.shape(x) for x in (*preds, *targets)}
    return len(shapes) > 1 and all(len(s) > 0 for s in shapes)


def confusion_matrix(pred, target, num_classes: int, *, ignore_index: int | None = 255,
                     n_threads: int | None = None) -> np.ndarray:
    """Confusion matrix of one or many label maps.

    Returns a (num_classes, num_classes) int64 array; rows are ground-truth
    classes, columns predicted classes.  ``pred`` and ``target`` are integer
    arrays of any dtype each (or array-likes) and equal shape; any strides.
    Pixels whose target equals ``ignore_index`` are skipped (``None``: none
    are).  A label outside [0, num_classes) anywhere else is a ValueError.
    """
    # The evaluation-loop call (a small ndarray map, default settings, at most
    # 1024 classes, so no memory check to make) in one step; anything it does
    # not take (None) goes the general way below.
    if (n_threads is None and type(pred) is np.ndarray and type(target) is np.ndarray
            and type(num_classes) is int and 0 < num_classes <= 1024
            and (ignore_index is None or type(ignore_index) is int)
            and not _KERNEL_OPTIONS):
        out = _core.confusion_matrix_small(target, pred, num_classes, ignore_index)
        if out is not None:
            return out
    k = check_num_classes(num_classes)
    ignore = check_ignore_index(ignore_index)
    threads = resolve_threads(n_threads)
    p = as_labels(pred, "pred")
    t = as_labels(target, "target")
    check_pair(p, t)
    out = np.zeros((k, k), dtype=np.int64)
    count(p, t, out, k, ignore, threads)
    return out


def _check_label_map(label_map) -> dict[int, int] | None:
    if label_map is None:
        return None
    if not isinstance(label_map, Mapping):
        raise TypeError(f"label_map must be a mapping {{old: new}}, got {type(label_map).__name__}")
    checked = {}
    for old, new in label_map.items():
        if isinstance(old, bool) or isinstance(new, bool):
            raise TypeError("label_map keys and values must be ints, got bool")
        try:
            old_i, new_i = operator.index(old), operator.index(new)
        except TypeError:
            raise TypeError(f"label_map keys and values must be ints, got {old!r}: {new!r}") from None
        if not 0 <= old_i < 2**24:  # the kernel's lookup table spans 0 .. largest key
            raise ValueError(f"label_map keys must be labels in [0, 2**24), got {old_i}")
        if not -(2**63) <= new_i < 2**63:
            raise ValueError(f"label_map values must fit in int64, got {new_i}")
        checked[old_i] = new_i
    return checked or None


def _target_lookup(dtype: np.dtype, num_classes: int, ignore_index: int | None, reduce_zero_label: bool,
                   label_map: dict[int, int] | None) -> tuple:
    """The kernel's lookup table for reduce_zero_label / label_map on one target dtype.

    Returns (lut, lo, reduce_zero_label, label_map): lut[v - lo] is the table
    row of raw label v (num_classes = ignored, num_classes + 1 = invalid).
    8- and 16-bit labels get a table over their whole range; wider ones over
    [0, largest key + 2) while the kernel applies reduce_zero_label to labels
    beyond it.
    """
    if dtype.itemsize <= 2:
        info = np.iinfo(dtype)
        values = np.arange(int(info.min), int(info.max) + 1, dtype=np.int64)
    else:
        shift = 1 if reduce_zero_label else 0
        top = max(label_map) + shift + 1 if label_map else 1
        values = np.arange(0, max(top, 1), dtype=np.int64)
    ignored = np.zeros(values.shape, dtype=bool)
    if ignore_index is not None:
        ignored |= values == ignore_index
    v = values
    if reduce_zero_label:
        ignored |= values == 0
        v = values - 1
    if label_map:
        keys = np.fromiter(label_map.keys(), dtype=np.int64)
        news = np.fromiter(label_map.values(), dtype=np.int64)
        order = np.argsort(keys)
        keys, news = keys[order], news[order]
        at = np.clip(np.searchsorted(keys, v), 0, len(keys) - 1)
        hit = (keys[at] == v) & ~ignored
        v = np.where(hit, news[at], v)
    if ignore_index is not None:
        ignored |= v == ignore_index
    rows = np.where(ignored, num_classes, np.where((v >= 0) & (v < num_classes), v, num_classes + 1))
    return rows.astype(np.int32), int(values[0]), reduce_zero_label, label_map


class ConfusionMatrix:
    """Accumulates a confusion matrix over many ``update(pred, target)`` calls.

    ``reduce_zero_label`` (ADE20K's annotation format: 0 = "other", not
    evaluated, label k -> class k-1) and ``label_map`` ({old: new}, applied to
    the reduced labels all at once, mmseg 1.x order) transform the ground
    truth inside the kernel pass.  ``update`` is all-or-nothing: if it raises,
    the matrix is exactly what it was.  Updates from several Python threads
    into one accumulator are safe: the kernel runs without the GIL and each
    result is added to the matrix with the GIL held.
    """

    def __init__(self, num_classes: int, *, ignore_index: int | None = 255, reduce_zero_label: bool = False,
                 label_map: Mapping[int, int] | None = None, n_threads: int | None = None):
        self.num_classes = check_num_classes(num_classes)
        self.ignore_index = check_ignore_index(ignore_index)
        if not isinstance(reduce_zero_label, (bool, np.bool_)):
            raise TypeError(f"reduce_zero_label must be a bool, got {type(reduce_zero_label).__name__}")
        self.reduce_zero_label = bool(reduce_zero_label)
        self.label_map = _check_label_map(label_map)
        self.n_threads = n_threads
        self._threads = resolve_threads(n_threads)
        self._matrix = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)
        self._lookups: dict[str, tuple] = {}

    # -- accumulation -------------------------------------------------------
    def _lookup(self, dtype: np.dtype) -> tuple | None:
        if not self.reduce_zero_label and not self.label_map:
            return None
        key = dtype.str
        lookup = self._lookups.get(key)
        if lookup is None:
            lookup = _target_lookup(dtype, self.num_classes, self.ignore_index, self.reduce_zero_label,
                                    self.label_map)
            self._lookups[key] = lookup
        return lookup

    def update(self, pred, target) -> ConfusionMatrix:
        """Add one label map (or a batch of any shape) to the matrix; returns self.

        Lists or tuples of maps whose sizes differ go through ``update_many``
        (all-or-nothing over the whole list).
        """
        if isinstance(pred, (list, tuple)) and isinstance(target, (list, tuple)) and _ragged(pred, target):
            return self.update_many(pred, target)
        p = as_labels(pred, "pred")
        t = as_labels(target, "target")
        check_pair(p, t)
        count(p, t, self._matrix, self.num_classes, self.ignore_index, self._threads, self._lookup(t.dtype))
        return self

    @property
    def matrix(self) -> np.ndarray:
        """The (K, K) int64 counts (rows = ground truth, columns = prediction), read-only view."""
        view = self._matrix.view()
        view.flags.writeable = False
        return view

    @property
    def total(self) -> int:
        """Pixels counted so far."""
        return int(self._matrix.sum())

    def compute(self, convention: str = "mmseg", beta: float = 1.0):
        """Metrics of everything accumulated so far (see ``compute_metrics``)."""
        return compute_metrics(self._matrix, convention=convention, beta=beta)

    def reset(self) -> ConfusionMatrix:
        self._matrix[...] = 0
        self.__dict__.pop("_sample_records", None)  # per-sample records of update_samples (samples.py)
        return self

    # -- combining ----------------------------------------------------------
    def _settings(self) -> tuple:
        return (self.num_classes, self.ignore_index, self.reduce_zero_label, self.label_map)

    def merge(self, other: ConfusionMatrix) -> ConfusionMatrix:
        """Add another accumulator's counts into this one (same classes and settings); returns self."""
        if not isinstance(other, ConfusionMatrix):
            raise TypeError(f"can only merge a ConfusionMatrix, got {type(other).__name__}")
        if other._settings() != self._settings():
            raise ValueError(
                "cannot merge accumulators with different settings: "
                f"{self._settings()} vs {other._settings()} (num_classes, ignore_index, reduce_zero_label, label_map)")
        _core.add_counts(self._matrix, other._matrix)
        return self

    def __add__(self, other: ConfusionMatrix) -> ConfusionMatrix:
        if not isinstance(other, ConfusionMatrix):
            return NotImplemented
        return self.copy().merge(other)

    def __iadd__(self, other: ConfusionMatrix) -> ConfusionMatrix:
        if not isinstance(other, ConfusionMatrix):
            return NotImplemented
        return self.merge(other)

    def copy(self) -> ConfusionMatrix:
        new = ConfusionMatrix(self.num_classes, ignore_index=self.ignore_index,
                              reduce_zero_label=self.reduce_zero_label, label_map=self.label_map,
                              n_threads=self.n_threads)
        new._matrix[...] = self._matrix
        return new

    def __eq__(self, other) -> bool:
        if not isinstance(other, ConfusionMatrix):
            return NotImplemented
        return self._settings() == other._settings() and np.array_equal(self._matrix, other._matrix)

    __hash__ = None  # mutable

    def __repr__(self) -> str:
        return (f"ConfusionMatrix(num_classes={self.num_classes}, ignore_index={self.ignore_index}, "
                f"reduce_zero_label={self.reduce_zero_label}, pixels={self.total})")

    # -- state --------------------------------------------------------------
    def state_dict(self) -> dict:
        """Everything needed to rebuild this accumulator exactly (plain types plus one int64 array)."""
        return {
            "format": "ade20k_metrics.ConfusionMatrix",
            "version": 1,
            "num_classes": self.num_classes,
            "ignore_index": self.ignore_index,
            "reduce_zero_label": self.reduce_zero_label,
            "label_map": None if self.label_map is None else dict(self.label_map),
            "matrix": self._matrix.copy(),
        }

    @classmethod
    def from_state_dict(cls, state: Mapping, *, n_threads: int | None = None) -> ConfusionMatrix:
        if not isinstance(state, Mapping):
            raise TypeError(f"state must be a mapping, got {type(state).__name__}")
        missing = {"num_classes", "ignore_index", "reduce_zero_label", "label_map", "matrix"} - set(state)
        if missing:
            raise ValueError(f"state is missing {sorted(missing)}")
        if state.get("version", 1) != 1:
            raise ValueError(f"unsupported state version {state.get('version')!r}")
        label_map = state["label_map"]
        if label_map is not None:
            label_map = {int(k): int(v) for k, v in dict(label_map).items()}
        cm = cls(int(state["num_classes"]), ignore_index=state["ignore_index"],
                 reduce_zero_label=bool(state["reduce_zero_label"]), label_map=label_map, n_threads=n_threads)
        matrix = np.asarray(state["matrix"])
        if matrix.shape != cm._matrix.shape:
            raise ValueError(f"state matrix has shape {matrix.shape}, expected {cm._matrix.shape}")
        if matrix.dtype.kind not in "iu":
            raise TypeError(f"state matrix must hold integers, got dtype {matrix.dtype}")
        if matrix.size and matrix.min() < 0:
            raise ValueError("state matrix has negative counts")
        if matrix.size and matrix.dtype.kind == "u" and int(matrix.max()) > np.iinfo(np.int64).max:
            raise ValueError("state matrix has counts too large for int64")
        cm._matrix[...] = matrix
        return cm

    def save(self, path) -> None:
        """Write the state to an .npz file atomically (a temporary file, then a rename)."""
        path = os.fspath(path)
        state = self.state_dict()
        label_map = state["label_map"] or {}
        directory = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=directory)
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, format=np.array(state["format"]), version=np.int64(state["version"]),
                         num_classes=np.int64(self.num_classes),
                         ignore_index=np.array([] if self.ignore_index is None else [self.ignore_index], np.int64),
                         reduce_zero_label=np.bool_(self.reduce_zero_label),
                         label_map=np.array(sorted(label_map.items()), dtype=np.int64).reshape(-1, 2),
                         matrix=state["matrix"])
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    @classmethod
    def load(cls, path, *, n_threads: int | None = None) -> ConfusionMatrix:
        """Read a file written by ``save``; a corrupt or foreign file is a ValueError."""
        where = os.fspath(path)
        try:
            # Opened here, so the file is closed whatever np.load makes of it.
            with open(where, "rb") as f, np.load(f, allow_pickle=False) as z:
                if str(z["format"]) != "ade20k_metrics.ConfusionMatrix":
                    raise ValueError("not an ade20k_metrics ConfusionMatrix file")
                ignore = z["ignore_index"]
                pairs = z["label_map"]
                if pairs.ndim != 2 or pairs.shape[1:] != (2,) or pairs.dtype.kind not in "iu":
                    raise ValueError(f"label_map must be (n, 2) integers, got {pairs.dtype} {pairs.shape}")
                state = {
                    "version": int(z["version"]),
                    "num_classes": int(z["num_classes"]),
                    "ignore_index": int(ignore[0]) if ignore.size else None,
                    "reduce_zero_label": bool(z["reduce_zero_label"]),
                    "label_map": {int(a): int(b) for a, b in pairs} or None,
                    "matrix": z["matrix"],
                }
                return cls.from_state_dict(state, n_threads=n_threads)
        except Exception as e:  # a corrupt zip can raise almost anything (NotImplementedError, RuntimeError, ...)
            raise ValueError(f"cannot read a ConfusionMatrix from {where!r}: {type(e).__name__}: {e}") from e

    # -- ecosystem: lists of maps, logits, torch.distributed -----------------
    def update_many(self, preds, targets) -> ConfusionMatrix:
        """Add equally long lists (or tuples) of maps whose sizes may differ; returns self.

        All-or-nothing over the whole list: the maps are counted into a
        temporary matrix that is added only after the last one succeeded.
        A single (pred, target) pair is accepted too.
        """
        pairs = label_pairs(preds, targets)
        partial = np.zeros_like(self._matrix)
        for p, t in pairs:
            count(p, t, partial, self.num_classes, self.ignore_index, self._threads, self._lookup(t.dtype))
        _core.add_counts(self._matrix, partial)
        return self

    def update_logits(self, logits, target, *, axis: int | None = None, resize: str | None = None) -> ConfusionMatrix:
        """Add argmax(logits, axis) against target, the argmax fused into the kernel; returns self.

        ``logits``: float32 or float16 scores (NumPy or CPU torch; torch
        bfloat16 too) of shape (N, C, H, W) or (C, H, W) with C = num_classes;
        ``axis`` (default: the one before the last two) is the class axis.
        Ties go to the lowest class, NaN wins (as numpy/torch argmax).
        ``resize="bilinear"``: (N, C, h, w) logits upsampled to the target's
        (H, W) on the fly, as torch's interpolate(align_corners=False) (core/resize.py).
        """
        if resize is not None:
            update_resized_logits(self, logits, target, resize, axis)
            return self
        update_logits(self, logits, target, axis)
        return self

    def update_samples(self, indices, preds, targets) -> ConfusionMatrix:
        """``update`` that also remembers each sample's matrix under its dataset index; returns self.

        ``indices``: one int with one (pred, target) pair, or a sequence of N
        ints with a batch (N, ...) or lists of N maps.  Lets
        ``sync(dataset_size=...)`` drop the samples DistributedSampler
        repeats (see ade20k_metrics.core.distributed).  All-or-nothing.
        """
        update_samples(self, indices, preds, targets)
        return self

    def sync(self, group=None, *, dataset_size: int | None = None) -> ConfusionMatrix:
        """Sum the matrix over the ranks of a torch.distributed group, exactly (int64); returns self.

        With ``dataset_size`` (= len(dataset)), samples counted through
        ``update_samples`` that DistributedSampler repeated to pad the last
        batch are counted once (see ade20k_metrics.core.distributed).  Call once,
        after the last update.
        """
        sync_matrix(self, group=group, dataset_size=dataset_size)
        return self
