"""Per-image records of ``ImageStats``: each image's counts of the classes present in it.

A record is a read-only (4, n) int64 array for the n classes that appear in
the image's ground truth or prediction, ascending: rows ``class``, ``tp``,
``fp``, ``fn``.  The kernel hands it back from the same pass that adds the
image to the dataset matrix (src/register_image_stats.cpp), so an image costs
O(classes present) memory, not K x K.

Images counted with a dataset ``index`` also keep their sparse matrix
(``cells``: (2, m) int64, flat index row * K + col and count), which ``sync``
needs to take a repeated sample's pixels out of the dataset matrix.

This module turns records into dense (N, K) arrays and checks states read
back from files or other processes, so that a corrupt one is refused with a
clear error rather than giving wrong numbers.
"""
from __future__ import annotations

import numbers

import numpy as np

CLASS, TP, FP, FN = range(4)


def empty_record() -> np.ndarray:
    record = np.zeros((4, 0), dtype=np.int64)
    record.flags.writeable = False
    return record


def frozen(array: np.ndarray) -> np.ndarray:
    array = np.ascontiguousarray(array, dtype=np.int64)
    array.flags.writeable = False
    return array


def dense(records: list[np.ndarray], num_classes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(tp, fp, fn), each (N, K) int64, from N records."""
    n = len(records)
    out = [np.zeros((n, num_classes), dtype=np.int64) for _ in range(3)]
    if n == 0:
        return out[0], out[1], out[2]
    lengths = np.fromiter((r.shape[1] for r in records), dtype=np.int64, count=n)
    flat = np.concatenate(records, axis=1)
    rows = np.repeat(np.arange(n), lengths)
    for array, row in zip(out, (TP, FP, FN)):
        array[rows, flat[CLASS]] = flat[row]
    return out[0], out[1], out[2]


def pack(records: list[np.ndarray], rows: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """(offsets (N+1,), flat (rows, total)): a list of (rows, n_i) arrays as two arrays, for state and files."""
    offsets = np.zeros(len(records) + 1, dtype=np.int64)
    if records:
        np.cumsum([r.shape[1] for r in records], out=offsets[1:])
        flat = np.concatenate(records, axis=1)
    else:
        flat = np.zeros((rows, 0), dtype=np.int64)
    return offsets, np.ascontiguousarray(flat, dtype=np.int64)


def _integers(value, name: str, shape_rank: int) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype.kind not in "iu":
        raise TypeError(f"state {name} must hold integers, got dtype {array.dtype}")
    if array.ndim != shape_rank:
        raise ValueError(f"state {name} must have {shape_rank} dimension(s), got shape {array.shape}")
    if array.dtype.kind == "u" and array.size and int(array.max()) > np.iinfo(np.int64).max:
        raise ValueError(f"state {name} has values too large for int64")
    return array.astype(np.int64)


def _offsets(value, name: str, count: int, total: int) -> np.ndarray:
    offsets = _integers(value, name, 1)
    if offsets.shape != (count + 1,):
        raise ValueError(f"state {name} must have {count + 1} entries, got {offsets.shape[0]}")
    if offsets[0] != 0 or offsets[-1] != total or np.any(np.diff(offsets) < 0):
        raise ValueError(f"state {name} must rise from 0 to {total}")
    return offsets


def unpack(offsets, flat, count: int, num_classes: int, matrix: np.ndarray) -> list[np.ndarray]:
    """Check (offsets, records) of ``count`` images against each other and the dataset matrix; the records."""
    flat = _integers(flat, "records", 2)
    if flat.shape[0] != 4:
        raise ValueError(f"state records must have 4 rows (class, tp, fp, fn), got {flat.shape[0]}")
    offsets = _offsets(offsets, "offsets", count, flat.shape[1])
    classes, counts = flat[CLASS], flat[TP:]
    if classes.size and (classes.min() < 0 or classes.max() >= num_classes):
        raise ValueError(f"state records name classes outside [0, {num_classes})")
    if counts.size and counts.min() < 0:
        raise ValueError("state records have negative counts")
    if counts.size and np.any(counts.sum(axis=0) == 0):
        raise ValueError("state records list a class with no pixel")
    # Ascending classes within each image: a step down is allowed only where an image starts.
    steps = np.diff(classes)
    starts = np.zeros(max(classes.size - 1, 0), dtype=bool)
    inner = offsets[1:-1]
    starts[inner[(inner > 0) & (inner < classes.size)] - 1] = True
    if np.any((steps <= 0) & ~starts):
        raise ValueError("state records list an image's classes out of order or twice")
    # The records must add up to the dataset matrix: its diagonal, row sums and column sums.
    tp, fp, fn = (np.zeros(num_classes, dtype=np.int64) for _ in range(3))
    for total, row in zip((tp, fp, fn), (TP, FP, FN)):
        np.add.at(total, classes, flat[row])
    diag = np.diag(matrix)
    if not (np.array_equal(tp, diag) and np.array_equal(tp + fp, matrix.sum(axis=0))
            and np.array_equal(tp + fn, matrix.sum(axis=1))):
        raise ValueError("state records do not add up to the state matrix")
    return [frozen(flat[:, offsets[i]:offsets[i + 1]]) for i in range(len(offsets) - 1)]


def unpack_cells(images, offsets, flat, records: list[np.ndarray], indices: list, num_classes: int) -> dict:
    """Check the sparse matrices kept for indexed images against their records; {image position: cells}."""
    images = _integers(images, "cell_images", 1)
    flat = _integers(flat, "cells", 2)
    if flat.shape[0] != 2:
        raise ValueError(f"state cells must have 2 rows (flat index, count), got {flat.shape[0]}")
    offsets = _offsets(offsets, "cell_offsets", images.shape[0], flat.shape[1])
    if images.size and (images.min() < 0 or images.max() >= len(records) or np.any(np.diff(images) <= 0)):
        raise ValueError("state cell_images must be ascending image positions")
    kept = {}
    k2 = num_classes * num_classes
    for j, image in enumerate(images.tolist()):
        if indices[image] is None:
            raise ValueError(f"state keeps cells for image {image}, which has no dataset index")
        cells = flat[:, offsets[j]:offsets[j + 1]]
        where, count = cells
        if where.size and (where.min() < 0 or where.max() >= k2 or np.any(np.diff(where) <= 0)):
            raise ValueError(f"state cells of image {image} are not ascending cells of a {num_classes}-class matrix")
        if count.size and count.min() <= 0:
            raise ValueError(f"state cells of image {image} have counts that are not positive")
        rows, cols = np.divmod(where, num_classes)
        derived = np.zeros((3, num_classes), dtype=np.int64)
        np.add.at(derived[0], rows[rows == cols], count[rows == cols])
        np.add.at(derived[1], cols[rows != cols], count[rows != cols])
        np.add.at(derived[2], rows[rows != cols], count[rows != cols])
        record = records[image]
        expected = np.zeros((3, num_classes), dtype=np.int64)
        expected[:, record[CLASS]] = record[TP:]
        if not np.array_equal(derived, expected):
            raise ValueError(f"state cells of image {image} do not match its record")
        kept[image] = frozen(cells)
    missing = [i for i, index in enumerate(indices) if index is not None and i not in kept]
    if missing:
        raise ValueError(f"state has no cells for indexed image {missing[0]}")
    return kept


def check_indices(indices, count: int) -> list:
    """Dataset indices, one per image: None or an int >= 0."""
    indices = list(indices)
    if len(indices) != count:
        raise ValueError(f"state has {len(indices)} indices for {count} images")
    out = []
    for index in indices:
        if index is None:
            out.append(None)
            continue
        if isinstance(index, bool) or not isinstance(index, numbers.Integral) or index < 0:
            raise ValueError(f"state indices must be None or ints >= 0, got {index!r}")
        out.append(int(index))
    return out
