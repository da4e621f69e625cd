"""The confusion matrix: one-shot ``confusion_matrix`` and the ``ConfusionMatrix`` accumulator."""
from __future__ import annotations

import contextlib
import operator
import os
import tempfile
import zipfile
from collections.abc import Mapping

import numpy as np

from ..metrics.compute import compute_metrics, count_sum, normalize_matrix
from ..metrics.shift import label_shift, shift_hint, warn_if_shifted
from . import _core
from .boundary import BoundaryCounts, sync_boundary
from .inputs import as_labels, as_scores, check_ignore_index, check_num_classes, check_pair, label_pairs
from .distributed import sync_matrix
from .kernel import _KERNEL_OPTIONS, _raise_invalid, count
from .reference import RawLabelMap, check_label_map_on
from .logits import class_axis, update_logits
from .resize import update_resized_logits
from .samples import drop_records, merge_records, update_samples
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
        if isinstance(old, (bool, np.bool_)) or isinstance(new, (bool, np.bool_)):
            raise TypeError("label_map keys and values must be ints, got bool")
        try:
            old_i, new_i = operator.index(old), operator.index(new)
        except TypeError:
            raise TypeError(f"label_map keys and values must be ints, got {old!r}: {new!r}") from None
        if not 0 <= old_i < 2**24:
            raise ValueError(f"label_map keys must be labels in [0, 2**24), got {old_i}")
        if not -(2**63) <= new_i < 2**63:
            raise ValueError(f"label_map values must fit in int64, got {new_i}")
        if old_i in checked:  # only a Mapping whose items() repeat a key gets here
            raise ValueError(f"label_map has the key {old_i} twice")
        checked[old_i] = new_i
    return checked or None


def _table_rows(values: np.ndarray, num_classes: int, ignore_index: int | None, reduce_zero_label: bool,
                label_map: dict[int, int] | None) -> np.ndarray:
    """The row of each raw label in ``values`` (int64): num_classes = ignored, num_classes + 1 = invalid."""
    def mapped(v, where):  # label_map applied all at once where ``where``
        keys = np.fromiter(label_map.keys(), dtype=np.int64)
        news = np.fromiter(label_map.values(), dtype=np.int64)
        order = np.argsort(keys)
        keys, news = keys[order], news[order]
        at = np.clip(np.searchsorted(keys, v), 0, len(keys) - 1)
        return np.where((keys[at] == v) & where, news[at], v)

    raw_first = isinstance(label_map, RawLabelMap)  # label_map_on="raw": every raw label, before the rest
    if label_map and raw_first:
        values = mapped(values, True)
    ignored = np.zeros(values.shape, dtype=bool)
    if ignore_index is not None:
        ignored |= values == ignore_index
    v = values
    if reduce_zero_label:
        ignored |= values == 0
        v = values - 1
    if label_map and not raw_first:
        v = mapped(v, ~ignored)
    if ignore_index is not None:
        ignored |= v == ignore_index
    return np.where(ignored, num_classes, np.where((v >= 0) & (v < num_classes), v, num_classes + 1))


# The widest table of rows the kernel gets for 32- and 64-bit targets (256 KiB
# of int32, as for 16-bit targets); keys spread wider go through _SparseRows.
_MAX_TABLE = 1 << 16
# Pixels coded at a time by _SparseRows (bounds its temporaries to a few MB).
_SPARSE_CHUNK = 1 << 18


def _target_lookup(dtype: np.dtype, num_classes: int, ignore_index: int | None, reduce_zero_label: bool,
                   label_map: dict[int, int] | None):
    """How the kernel codes target labels of one dtype under reduce_zero_label / label_map.

    Usually the kernel's lookup table (lut, lo, reduce_zero_label, label_map):
    lut[v - lo] is the row of raw label v.  8- and 16-bit labels get a table
    over their whole range.  For wider ones only the labels the settings
    change (0 under reduce_zero_label, and the keys, shifted by it) need a
    table entry: the kernel codes every other label by its own rule, so the
    table spans [smallest, largest] of those.  Keys spread over more than
    _MAX_TABLE labels give a _SparseRows instead, not a table of up to 2**24
    entries per dtype.
    """
    if dtype.itemsize <= 2:
        info = np.iinfo(dtype)
        values = np.arange(int(info.min), int(info.max) + 1, dtype=np.int64)
    else:
        # Keys read reduced labels (raw = key + 1) unless label_map_on="raw".
        shift = 1 if reduce_zero_label and not isinstance(label_map, RawLabelMap) else 0
        changed = sorted({key + shift for key in label_map or ()} | ({0} if reduce_zero_label else set()))
        if changed[-1] - changed[0] >= _MAX_TABLE:
            return _SparseRows(dtype, np.array(changed, dtype=np.int64), num_classes, ignore_index,
                               reduce_zero_label, label_map)
        values = np.arange(changed[0], changed[-1] + 1, dtype=np.int64)
    rows = _table_rows(values, num_classes, ignore_index, reduce_zero_label, label_map)
    return rows.astype(np.int32), int(values[0]), reduce_zero_label, label_map


class _SparseRows:
    """Target rows computed in NumPy before the kernel, for label_map keys too spread out for one table.

    Calling it with a 32- or 64-bit target gives an array of the same shape
    holding each pixel's row (uint16: num_classes = ignored), which the kernel
    then counts with ignore_index = num_classes and no table.  The labels the
    settings change are split into a head, those within _MAX_TABLE of the
    smallest (a table, as the kernel's), and a tail of far keys, found by
    binary search among the few pixels beyond the head.  Every other label
    follows the kernel's own rule (csrc/ade20k_metrics/labels.hpp
    TargetCoder), restated here.  An invalid target label raises the kernel's
    error before anything is counted.  Memory: 2 bytes a pixel for the rows
    (zero-stride axes are coded once) and a few MB of temporaries.
    """

    def __init__(self, dtype: np.dtype, changed: np.ndarray, num_classes: int, ignore_index: int | None,
                 reduce_zero_label: bool, label_map: dict[int, int] | None):
        settings_ = (num_classes, ignore_index, reduce_zero_label, label_map)
        self.dtype = np.dtype(dtype)
        self.head_lo = int(changed[0])  # every changed label is in [0, 2**24 + 1]: any 32/64-bit dtype holds it
        head_hi = int(changed[changed < self.head_lo + _MAX_TABLE][-1])
        self.head = _table_rows(np.arange(self.head_lo, head_hi + 1, dtype=np.int64), *settings_).astype(np.uint16)
        tail = changed[changed > head_hi]
        self.tail = tail.astype(self.dtype)
        self.tail_rows = _table_rows(tail, *settings_).astype(np.uint16)
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.reduce_zero_label, self.label_map = reduce_zero_label, label_map

    def __call__(self, target: np.ndarray) -> np.ndarray:
        # Zero-stride axes hold one label each: code that one, broadcast the rows back.
        one = tuple(slice(0, 1) if stride == 0 else slice(None) for stride in target.strides)
        core = np.asarray(target[one])
        flat = core.reshape(-1)
        rows = np.empty(flat.shape, dtype=np.uint16)
        for start in range(0, flat.size, _SPARSE_CHUNK):
            rows[start:start + _SPARSE_CHUNK] = self._code(flat[start:start + _SPARSE_CHUNK])
        bad = int(np.count_nonzero(rows == self.num_classes + 1))
        if bad:
            _raise_invalid(target, target, self.num_classes, self.ignore_index, bad * (target.size // core.size), 0,
                           (None, 0, self.reduce_zero_label, self.label_map))
        return np.broadcast_to(rows.reshape(core.shape), target.shape)

    def _code(self, raw: np.ndarray) -> np.ndarray:
        k, ignore = self.num_classes, self.ignore_index
        kind = raw.dtype.type
        info = np.iinfo(raw.dtype)

        def equal(a, value):  # a == value; nowhere if the dtype cannot hold value
            if value is None or not int(info.min) <= value <= int(info.max):
                return np.zeros(a.shape, dtype=bool)
            return a == kind(value)

        # The kernel's rule for labels the settings leave alone.
        ignored = equal(raw, ignore)
        v = raw
        is_class = ~ignored
        if self.reduce_zero_label:
            ignored |= raw == 0
            at_min = raw == kind(info.min)  # v - 1 is below the dtype
            v = raw - kind(1)  # wraps only where at_min
            ignored |= equal(v, ignore) & ~at_min
            if ignore is not None and ignore == int(info.min) - 1:
                ignored |= at_min
            is_class = ~ignored & ~at_min
        is_class &= (v >= 0) & (v < k)
        rows = np.where(ignored, k, np.where(is_class, v, k + 1)).astype(np.uint16)
        # The head's table, indexed as the kernel does: one unsigned test for lo <= raw < lo + size.
        offset = (raw - kind(self.head_lo)).view(f"u{raw.dtype.itemsize}")
        in_head = offset < len(self.head)
        rows = np.where(in_head, self.head[np.minimum(offset, len(self.head) - 1)], rows)
        if self.tail.size:
            beyond = np.flatnonzero((raw >= self.tail[0]) & (raw <= self.tail[-1]))
            labels = raw[beyond]
            at = np.minimum(np.searchsorted(self.tail, labels), self.tail.size - 1)
            hit = self.tail[at] == labels
            rows[beyond[hit]] = self.tail_rows[at[hit]]
        return rows


_FORMAT = "ade20k_metrics.ConfusionMatrix"


def _label_map_on_member(state: Mapping) -> dict:
    """The .npz member of a label_map that reads raw labels; none for the default (older files read the same)."""
    return {"label_map_on": np.array("raw")} if state.get("label_map_on") == "raw" else {}


def read_label_map_on(fields) -> str:
    """The label_map order of a saved file (an _NpzFields): "reduced" when the member is absent."""
    try:
        return fields.scalar("label_map_on", "U")
    except KeyError:
        return "reduced"
_INT64_MAX = 2**63 - 1


def _is_index(value) -> bool:
    try:
        operator.index(value)
    except TypeError:
        return False
    return True


def _check_counts(matrix: np.ndarray) -> None:
    """ValueError unless every entry of an integer array is a count an int64 matrix holds."""
    if matrix.size and matrix.dtype.kind == "i" and matrix.min() < 0:
        raise ValueError("state matrix has negative counts")
    if matrix.size and matrix.dtype.kind == "u" and int(matrix.max()) > _INT64_MAX:
        raise ValueError("state matrix has counts too large for int64")


@contextlib.contextmanager
def npz_state(path, form: str, kind: str):
    """The checked members of a file ``save`` wrote (an ``_NpzFields``), if its "format" is ``form``.

    Opened here, so the file is closed whatever zipfile makes of it; anything
    raised while it is read (a corrupt zip can raise almost anything:
    NotImplementedError, RuntimeError, ...) becomes a ValueError naming the
    file and ``kind``.
    """
    where = os.fspath(path)
    try:
        with open(where, "rb") as f, zipfile.ZipFile(f) as archive:
            fields = _NpzFields(archive)
            try:
                got = fields.scalar("format", "U")
            except (KeyError, ValueError):  # no string "format": some other .npz
                got = None
            if got != form:
                raise ValueError(f"not an ade20k_metrics {kind} file")
            yield fields
    except Exception as e:
        raise ValueError(f"cannot read {'an' if kind[0] in 'AEIOU' else 'a'} {kind} from {where!r}: "
                         f"{type(e).__name__}: {e}") from e


def read_settings(fields) -> dict:
    """The accumulator settings every state file holds, each member's header checked before its data."""
    ignore = fields.array("ignore_index", "iu", lambda shape: shape in ((0,), (1,)), "(0,) or (1,)")
    pairs = fields.array("label_map", "iu", lambda shape: len(shape) == 2 and shape[1] == 2
                         and shape[0] <= 2**24, "(n, 2) with n <= 2**24")
    if len(np.unique(pairs[:, 0])) != len(pairs):
        raise ValueError("label_map has a key twice")
    return {
        "version": fields.scalar("version", "iu"),
        "num_classes": fields.scalar("num_classes", "iu"),
        "ignore_index": int(ignore[0]) if ignore.size else None,
        "reduce_zero_label": fields.scalar("reduce_zero_label", "b"),
        "label_map": dict(zip(pairs[:, 0].tolist(), pairs[:, 1].tolist())) or None,
        "label_map_on": read_label_map_on(fields),
    }


class _NpzFields:
    """Members of an .npz archive, each header (shape, dtype, size) checked before its data is read."""

    _CHUNK_BYTES = 1 << 20

    def __init__(self, archive: zipfile.ZipFile):
        self.archive = archive

    def _open(self, name: str):
        """The open member and its (shape, fortran_order, dtype), checked against the zip's own size."""
        info = self.archive.getinfo(name + ".npy")  # KeyError for a missing member
        f = self.archive.open(info)
        try:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise ValueError(f"{name}: unsupported .npy format version {version}")
            if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None:
                raise ValueError(f"{name} has dtype {dtype}, not plain numbers")
            items = 1
            for n in shape:
                items *= n
            if f.tell() + items * dtype.itemsize != info.file_size:
                raise ValueError(f"{name} declares {shape} {dtype} but its member holds {info.file_size} bytes")
        except BaseException:
            f.close()
            raise
        return f, shape, fortran, dtype

    def array(self, name: str, kinds: str, shape_ok, wanted: str, max_bytes: int = 1 << 28) -> np.ndarray:
        """A small member whose dtype kind is one of ``kinds`` and whose shape passes ``shape_ok``."""
        f, shape, fortran, dtype = self._open(name)
        with f:
            size = self._size(shape, dtype)
            if dtype.kind not in kinds or not shape_ok(shape) or size > max_bytes:
                what = {"iu": "integers", "U": "a string", "b": "a bool"}[kinds]
                raise ValueError(f"{name} must be {what}, shape {wanted}; got {dtype} of shape {shape}")
            data = f.read(size)
            if len(data) != size:
                raise ValueError(f"{name} is truncated")
        return np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")

    def scalar(self, name: str, kinds: str):
        """A 0-d member as a Python value of one of ``kinds`` (no float that int() would truncate)."""
        return self.array(name, kinds, lambda shape: shape == (), "0-d", max_bytes=256).item()

    @staticmethod
    def _size(shape, dtype) -> int:
        n = dtype.itemsize
        for d in shape:
            n *= d
        return n

    def read_counts_into(self, name: str, out: np.ndarray) -> None:
        """Read an integer (K, K) member into ``out`` a chunk at a time, checking every count."""
        f, shape, fortran, dtype = self._open(name)
        with f:
            if shape != out.shape:
                raise ValueError(f"state matrix has shape {shape}, expected {out.shape}")
            if dtype.kind not in "iu":
                raise ValueError(f"state matrix must hold integers, got dtype {dtype}")
            flat = out.reshape(-1)
            per = self._CHUNK_BYTES // dtype.itemsize
            for start in range(0, flat.size, per):
                n = min(per, flat.size - start)
                data = f.read(n * dtype.itemsize)
                if len(data) != n * dtype.itemsize:
                    raise ValueError("state matrix data is truncated")
                part = np.frombuffer(data, dtype=dtype)
                _check_counts(part)
                flat[start:start + n] = part
            if f.read(1):  # reading to the end also has zipfile check the member's CRC
                raise ValueError("state matrix has data after its counts")
        if fortran:  # column-major data: what was read is the transpose
            out[...] = out.T.copy()


class ConfusionMatrix:
    """Accumulates a confusion matrix over many ``update(pred, target)`` calls.

    ``reduce_zero_label`` (ADE20K's annotation format: 0 = "other", not
    evaluated, label k -> class k-1) and ``label_map`` ({old: new}, applied
    all at once) transform the ground truth inside the kernel pass.
    ``label_map_on`` says which labels the map reads: "reduced" (default: the
    labels after reduce_zero_label, ignored pixels left alone) or "raw" (the
    labels as stored, at every pixel, before reduce_zero_label and before
    ignore_index is tested, as mmseg 0.30's intersect_and_union and HF
    evaluate's mean_iou do: a key of 0 or of the ignore value is a label too).  ``update`` is all-or-nothing: if it raises,
    the matrix is exactly what it was.  Several Python threads may share one
    accumulator: the kernel counts without the GIL, and every change of the
    matrix (update, update_samples, merge) and every read that copies it
    (total, compute, copy, state_dict, +) runs in one call that holds the GIL,
    so each sees every other one whole or not at all; reset swaps in a new
    matrix.  Counts are int64: an add that would pass 2**63 - 1 is an
    OverflowError with nothing added, and sums of counts (total, the metrics)
    are exact.

    ``boundary=ratio`` also counts Boundary IoU's band matrix (``boundary_matrix``,
    band width d = max(1, round(ratio * image diagonal))) in the same kernel
    pass, and ``boundary_f1=ratio`` the BF score (threshold ratio * diagonal);
    label maps are then 2-d, or batches (N, H, W) banded image by image
    (core/boundary.py, docs/boundary.md).
    """

    def __init__(self, num_classes: int, *, ignore_index: int | None = 255, reduce_zero_label: bool = False,
                 label_map: Mapping[int, int] | None = None, n_threads: int | None = None,
                 boundary: float | None = None, boundary_f1: float | None = None, label_map_on: str = "reduced"):
        self.num_classes = check_num_classes(num_classes)
        self.ignore_index = check_ignore_index(ignore_index)
        if not isinstance(reduce_zero_label, (bool, np.bool_)):
            raise TypeError(f"reduce_zero_label must be a bool, got {type(reduce_zero_label).__name__}")
        self.reduce_zero_label = bool(reduce_zero_label)
        self.label_map_on = check_label_map_on(label_map_on, label_map)
        self.label_map = _check_label_map(label_map)
        if self.label_map and self.label_map_on == "raw":  # the order travels with the map (settings, copies)
            self.label_map = RawLabelMap(self.label_map)
        self.n_threads = n_threads
        self._threads = resolve_threads(n_threads)
        self._matrix = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)
        self._lookups: dict[str, tuple | _SparseRows] = {}
        self._boundary = BoundaryCounts.create(self.num_classes, boundary, boundary_f1)  # None: region counts only
        self.boundary, self.boundary_f1 = self._boundary.settings() if self._boundary else (None, None)

    # -- accumulation -------------------------------------------------------
    def _lookup(self, dtype: np.dtype):
        """The kernel's table for target labels of this dtype (see _target_lookup), a _SparseRows, or None."""
        if not self.reduce_zero_label and not self.label_map:
            return None
        key = dtype.str
        lookup = self._lookups.get(key)
        if lookup is None:
            lookup = _target_lookup(dtype, self.num_classes, self.ignore_index, self.reduce_zero_label,
                                    self.label_map)
            self._lookups[key] = lookup
        return lookup

    def _kernel_target(self, target: np.ndarray) -> tuple:
        """(target, ignore_index, lookup table or None) as the kernel is to count this target.

        The target itself with the settings' table, except for a label_map
        too spread out for a table: then each pixel's row, coded in NumPy
        (a ValueError here if a label is invalid), with num_classes as the
        ignored value.
        """
        lookup = self._lookup(target.dtype)
        if isinstance(lookup, _SparseRows):
            return lookup(target), self.num_classes, None
        return target, self.ignore_index, lookup

    def _count(self, pred: np.ndarray, target: np.ndarray, out: np.ndarray, band=None) -> None:
        target, ignore_index, lookup = self._kernel_target(target)
        if self._boundary is None:
            count(pred, target, out, self.num_classes, ignore_index, self._threads, lookup)
            return
        (band or self._boundary).count(
            pred, target, out, self.num_classes, ignore_index, self._threads, lookup,
            lambda p, t, o: count(p, t, o, self.num_classes, ignore_index, self._threads, lookup))

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
        self._count(p, t, self._matrix)
        return self

    @property
    def matrix(self) -> np.ndarray:
        """The (K, K) int64 counts (rows = ground truth, columns = prediction), read-only view.

        The view follows later updates until ``reset()``, which starts a new
        matrix.  While other threads update, read a consistent copy with
        ``state_dict()["matrix"]`` or ``copy()`` instead.
        """
        view = self._matrix.view()
        view.flags.writeable = False
        return view

    @property
    def boundary_matrix(self) -> np.ndarray | None:
        """The (K+1, K+1) int64 band counts of ``boundary=`` (None without it), a consistent copy.

        Row: the pixel's ground-truth class if the pixel is in that class's
        inner band, else K; column: the same for the prediction; pixels whose
        target is ignored are not counted.
        """
        if self._boundary is None:
            return None
        out = self._boundary.snapshot_matrix()
        if out is not None:
            out.flags.writeable = False
        return out

    def _snapshot(self) -> np.ndarray:
        # A copy taken with the GIL held (add_counts never releases it), so it
        # holds each concurrent update whole or not at all; NumPy's own copy
        # releases the GIL and can catch an update half added.
        out = np.zeros_like(self._matrix)
        _core.add_counts(out, self._matrix)
        return out

    @property
    def total(self) -> int:
        """Pixels counted so far (exact, whatever the counts)."""
        return int(count_sum(self._snapshot()))

    def compute(self, convention: str = "mmseg", beta: float = 1.0, *, zero_division: float | None = None):
        """Metrics of everything accumulated so far (see ``compute_metrics``).

        The accumulator's ``ignore_index`` goes along (torchmetrics leaves that
        class out of mIoU when it is one); a matrix whose mass sits beside the
        diagonal warns (``LabelShiftWarning``) with the likely fix for these settings.
        """
        matrix = self._snapshot()
        band = self._boundary
        metrics = compute_metrics(matrix, convention=convention, beta=beta, ignore_index=self.ignore_index,
                                  zero_division=zero_division, warn_shift=False,
                                  boundary_matrix=band.snapshot_matrix() if band else None,
                                  boundary_f1=band.bf_pair() if band else None)
        warn_if_shifted(matrix, shift_hint(label_shift(matrix), self.reduce_zero_label))
        return metrics

    def normalized(self, normalize: str | None = "true") -> np.ndarray:
        """The matrix as fractions: "true" (rows sum to 1), "pred" (columns), "all" (see ``normalize_matrix``)."""
        return normalize_matrix(self._snapshot(), normalize)

    def reset(self) -> ConfusionMatrix:
        """Forget every count (and update_samples' records); returns self.

        A new zero matrix replaces the old one in one step, so an update
        running in another thread lands wholly before the reset (in the old
        matrix) or wholly after it; zeroing in place would race with it.
        """
        self._matrix = np.zeros_like(self._matrix)
        if self._boundary is not None:
            self._boundary = self._boundary.empty()
        drop_records(self)
        return self

    # -- combining ----------------------------------------------------------
    def _settings(self) -> tuple:
        base = (self.num_classes, self.ignore_index, self.reduce_zero_label, self.label_map)
        return base if self._boundary is None else (*base, *self._boundary.settings())

    def merge(self, other: ConfusionMatrix) -> ConfusionMatrix:
        """Add another accumulator's counts (and update_samples' records) into this one; returns self.

        Same classes and settings only.  OverflowError if a count would pass
        int64, and then nothing is added.
        """
        if not isinstance(other, ConfusionMatrix):
            raise TypeError(f"can only merge a ConfusionMatrix, got {type(other).__name__}")
        if other._settings() != self._settings():
            raise ValueError(
                "cannot merge accumulators with different settings: "
                f"{self._settings()} vs {other._settings()} (num_classes, ignore_index, reduce_zero_label, label_map)")
        if self._boundary is not None:
            self._boundary.check_addable(other._boundary)  # before anything is added
        _core.add_counts(self._matrix, other._matrix)
        if self._boundary is not None:
            self._boundary.add(other._boundary)
        merge_records(self, other)
        return self

    def __add__(self, other: ConfusionMatrix) -> ConfusionMatrix:
        if not isinstance(other, ConfusionMatrix):
            return NotImplemented
        return self.copy().merge(other)

    def __radd__(self, other) -> ConfusionMatrix:
        # sum(accumulators) starts from the int 0: the one thing added from the left.
        if type(other) is int and other == 0:
            return self.copy()
        return NotImplemented

    def __iadd__(self, other: ConfusionMatrix) -> ConfusionMatrix:
        if not isinstance(other, ConfusionMatrix):
            return NotImplemented
        return self.merge(other)

    def copy(self) -> ConfusionMatrix:
        """An independent accumulator with the same settings, counts and update_samples records."""
        new = ConfusionMatrix(self.num_classes, ignore_index=self.ignore_index,
                              reduce_zero_label=self.reduce_zero_label, label_map=self.label_map,
                              n_threads=self.n_threads, boundary=self.boundary, boundary_f1=self.boundary_f1)
        new._matrix = self._snapshot()
        if self._boundary is not None:
            new._boundary = self._boundary.copy()
        merge_records(new, self)
        return new

    def __eq__(self, other) -> bool:
        if not isinstance(other, ConfusionMatrix):
            return NotImplemented
        if other is self:  # two snapshots of one accumulator that threads update may differ
            return True
        return (self._settings() == other._settings() and np.array_equal(self._snapshot(), other._snapshot())
                and (self._boundary is None or self._boundary.equal(other._boundary)))

    __hash__ = None  # mutable

    def __repr__(self) -> str:
        extra = "".join(f", {name}={value}" for name, value in (("boundary", self.boundary),
                                                                ("boundary_f1", self.boundary_f1)) if value is not None)
        return (f"ConfusionMatrix(num_classes={self.num_classes}, ignore_index={self.ignore_index}, "
                f"reduce_zero_label={self.reduce_zero_label}{extra}, pixels={self.total})")

    # -- state --------------------------------------------------------------
    def state_dict(self) -> dict:
        """Everything needed to rebuild this accumulator exactly (plain types plus one int64 array).

        update_samples' per-sample records are not part of it (pickle keeps them).
        With boundary metrics the state is version 2 and holds their counts too
        (core/boundary.py BoundaryCounts.state), so older readers refuse it
        rather than drop them.
        """
        state = {
            "format": _FORMAT,
            "version": 1,
            "num_classes": self.num_classes,
            "ignore_index": self.ignore_index,
            "reduce_zero_label": self.reduce_zero_label,
            "label_map": None if self.label_map is None else dict(self.label_map),
            "matrix": self._snapshot(),
        }
        if isinstance(self.label_map, RawLabelMap):  # absent: "reduced", as every older state
            state["label_map_on"] = "raw"
        if self._boundary is not None:
            state["version"] = 2
            state.update(self._boundary.state())
        return state

    @classmethod
    def _from_settings(cls, state: Mapping, n_threads) -> ConfusionMatrix:
        """An empty accumulator with the settings of a state; TypeError/ValueError for a bad one."""
        missing = {"num_classes", "ignore_index", "reduce_zero_label", "label_map", "matrix"} - set(state)
        if missing:
            raise ValueError(f"state is missing {sorted(missing)}")
        form = state.get("format", _FORMAT)
        if not isinstance(form, str) or form != _FORMAT:
            raise ValueError(f"state is not a ConfusionMatrix's: format {form!r}")
        version = state.get("version", 1)
        # Exactly the int 1 (or 2: with boundary metrics): a float or a bool that compares equal is no version
        # this code wrote.
        if isinstance(version, (bool, np.bool_)) or not _is_index(version) or operator.index(version) not in (1, 2):
            raise ValueError(f"unsupported state version {version!r}")
        boundary = dict(boundary=state.get("boundary"), boundary_f1=state.get("boundary_f1"))
        if (operator.index(version) == 2) != (boundary != dict(boundary=None, boundary_f1=None)):
            raise ValueError("state version 2 holds boundary metrics and only version 2 does")
        # The constructor's own checks, on the values as given: no int() or bool()
        # that would turn 3.9 classes into 3 or the string "False" into True.
        return cls(state["num_classes"], ignore_index=state["ignore_index"],
                   reduce_zero_label=state["reduce_zero_label"], label_map=state["label_map"], n_threads=n_threads,
                   label_map_on=state.get("label_map_on", "reduced"), **boundary)

    @classmethod
    def from_state_dict(cls, state: Mapping, *, n_threads: int | None = None) -> ConfusionMatrix:
        """Rebuild an accumulator from ``state_dict()``; TypeError for a wrongly typed field, ValueError for a bad value."""
        if not isinstance(state, Mapping):
            raise TypeError(f"state must be a mapping, got {type(state).__name__}")
        cm = cls._from_settings(state, n_threads)
        matrix = np.asarray(state["matrix"])
        if matrix.shape != cm._matrix.shape:
            raise ValueError(f"state matrix has shape {matrix.shape}, expected {cm._matrix.shape}")
        if matrix.dtype.kind not in "iu":
            raise TypeError(f"state matrix must hold integers, got dtype {matrix.dtype}")
        _check_counts(matrix)
        if cm._boundary is not None:
            cm._boundary.load(state)
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
                         matrix=state["matrix"], **_boundary_members(state), **_label_map_on_member(state))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    @classmethod
    def load(cls, path, *, n_threads: int | None = None) -> ConfusionMatrix:
        """Read a file written by ``save``; a corrupt or foreign file is a ValueError.

        Every member's .npy header (shape, dtype) is checked before its data
        is read, so a small file that declares a huge array costs nothing;
        the matrix is read in chunks straight into the new accumulator.
        """
        with npz_state(path, _FORMAT, "ConfusionMatrix") as fields:
            state = read_settings(fields)
            state.update(matrix=None, **_read_boundary_members(fields, state["version"]))
            cm = cls._from_settings(state, n_threads)
            if cm._boundary is not None:
                cm._boundary.load(_read_boundary_counts(fields, cm.num_classes, cm._boundary.settings()))
            fields.read_counts_into("matrix", cm._matrix)
            return cm

    # -- ecosystem: lists of maps, logits, torch.distributed -----------------
    def update_many(self, preds, targets) -> ConfusionMatrix:
        """Add equally long lists (or tuples) of maps whose sizes may differ; returns self.

        All-or-nothing over the whole list: the maps are counted into a
        temporary matrix that is added only after the last one succeeded.
        A single (pred, target) pair is accepted too.
        """
        pairs = label_pairs(preds, targets)
        partial = np.zeros_like(self._matrix)
        band = self._boundary.empty() if self._boundary is not None else None
        for p, t in pairs:
            self._count(p, t, partial, band)
        if band is not None:
            self._boundary.check_addable(band)
        _core.add_counts(self._matrix, partial)
        if band is not None:
            self._boundary.add(band)
        return self

    def update_logits(self, logits, target, *, axis: int | None = None, resize: str | None = None) -> ConfusionMatrix:
        """Add argmax(logits, axis) against target, the argmax fused into the kernel; returns self.

        ``logits``: float32 or float16 scores (NumPy or CPU torch; torch
        bfloat16 too; float64 through NumPy's argmax a slab at a time, exact
        in float64, without the resize) of shape (N, C, H, W) or (C, H, W) with C = num_classes;
        ``axis`` (default: the one before the last two) is the class axis.
        Ties go to the lowest class, NaN wins (as numpy/torch argmax).
        ``resize="bilinear"``: (N, C, h, w) logits upsampled to the target's
        (H, W) on the fly, as torch's interpolate(align_corners=False) (core/resize.py).
        """
        if self._boundary is not None:  # the bands need the whole label map: argmax first
            return self.update(_argmax_labels(logits, target, axis, resize, self.num_classes), target)
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
        Not with boundary metrics (they keep no per-sample records yet).
        """
        if self._boundary is not None:
            raise ValueError("update_samples does not keep boundary metrics per sample yet; with boundary= or "
                             "boundary_f1=, count with update() and sync() without dataset_size")
        update_samples(self, indices, preds, targets)
        return self

    def sync(self, group=None, *, dataset_size: int | None = None) -> ConfusionMatrix:
        """Sum the matrix over the ranks of a torch.distributed group, exactly (int64); returns self.

        With ``dataset_size`` (= len(dataset)), samples counted through
        ``update_samples`` that DistributedSampler repeated to pad the last
        batch are counted once (see ade20k_metrics.core.distributed).  Call once,
        after the last update.  With boundary metrics their counts are summed
        too (without ``dataset_size``), all or nothing with the matrix.
        """
        if self._boundary is None:
            sync_matrix(self, group=group, dataset_size=dataset_size)
            return self
        if dataset_size is not None:
            raise ValueError("sync(dataset_size=...) needs update_samples' records, which boundary metrics do not "
                             "keep yet; sync() without dataset_size sums the counts as they are")
        store = sync_boundary(self._boundary, group)
        sync_matrix(self, group=group)
        store()
        return self


# -- boundary metrics' members of a saved file (core/boundary.py holds their state) --------------------

def _boundary_members(state: Mapping) -> dict:
    """The .npz members of a state's boundary entries (none without boundary metrics)."""
    if state.get("version") != 2:
        return {}

    def ratio(value):
        return np.array([] if value is None else [value], np.float64)

    members = {"boundary": ratio(state["boundary"]), "boundary_f1": ratio(state["boundary_f1"])}
    if state["boundary"] is not None:
        members["boundary_matrix"] = state["boundary_matrix"]
    if state["boundary_f1"] is not None:
        members.update(bf_sum=state["bf_sum"], bf_count=state["bf_count"],
                       bf_image_sum=np.float64(state["bf_image_sum"]), bf_images=np.int64(state["bf_images"]))
    return members


def _read_boundary_members(fields: _NpzFields, version) -> dict:
    """The boundary settings of a saved file (version 2), header-checked."""
    if version != 2:
        return {}
    out = {}
    for name in ("boundary", "boundary_f1"):
        try:
            a = fields.array(name, "f", lambda shape: shape in ((0,), (1,)), "(0,) or (1,)")
        except KeyError:
            raise ValueError(f"a version 2 file holds boundary metrics, but this one has no {name!r} member") from None
        out[name] = float(a[0]) if a.size else None
    return out


def _read_boundary_counts(fields: _NpzFields, k: int, settings: tuple) -> dict:
    ratio, f1_ratio = settings
    out = {}
    if ratio is not None:
        out["boundary_matrix"] = fields.array("boundary_matrix", "iu", lambda shape: shape == (k + 1, k + 1),
                                              f"({k + 1}, {k + 1})", max_bytes=1 << 40)
    if f1_ratio is not None:
        out["bf_sum"] = fields.array("bf_sum", "f", lambda shape: shape == (k,), f"({k},)")
        out["bf_count"] = fields.array("bf_count", "iu", lambda shape: shape == (k,), f"({k},)")
        out["bf_image_sum"] = fields.scalar("bf_image_sum", "f")
        out["bf_images"] = fields.scalar("bf_images", "iu")
    return out


def _argmax_labels(logits, target, axis, resize, num_classes: int):
    """The label map of class scores (numpy or torch argmax: lowest class on ties, NaN wins), for boundary metrics."""
    if resize is not None:
        raise ValueError("update_logits(resize=...) with boundary metrics is not supported: the bands need the "
                         "full-resolution label map; upsample and take the argmax first, then update()")
    scores, _ = as_scores(logits, "logits", float64=True)
    t = as_labels(target, "target")
    a = class_axis(scores.ndim, t.ndim, axis)
    if scores.shape[a] != num_classes:
        raise ValueError(f"logits have {scores.shape[a]} classes on axis {a}, the matrix has num_classes={num_classes}")
    if scores.dtype.itemsize == 2 and scores.dtype.kind != "f":  # bfloat16 bits: order them as floats
        scores = (scores.view(np.uint16).astype(np.uint32) << 16).view(np.float32)
    return np.argmax(scores, axis=a)

