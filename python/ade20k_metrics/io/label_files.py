"""Scoring folders of label-map PNGs: pairing files, decoding them, streaming them into the accumulator.

Files pair by their path relative to each folder, without the ``.png``
suffix: ``PRED_DIR/a/x.png`` goes with ``GT_DIR/a/x.png``.  Both folders are
searched recursively (a flat ADE20K validation folder is the common case;
nested layouts such as per-city folders work the same way); hidden files and
folders (names starting with ".") are skipped.

PNGs are decoded by a thread pool (Pillow releases the GIL while inflating)
and handed to the accumulator in file order, with a bounded number of pairs in
flight, so memory does not grow with the number of images and the first bad
file in order is the one reported, whatever the thread timing.
"""
from __future__ import annotations

import hashlib
import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core import reference
from ..core.confusion import ConfusionMatrix
from .report import MissingDependencyError

LABEL_SUFFIX = ".png"

# Pillow modes whose pixels are one integer label each, and the NumPy dtype they decode to.
_INTEGER_MODES = {"1": "bool", "L": "uint8", "P": "uint8", "I;16": "uint16", "I;16L": "uint16",
                  "I;16B": "uint16", "I;16N": "uint16", "I": "int32"}
_FLOAT_MODES = {"F"}


class InputError(Exception):
    """Bad input data (a missing counterpart, an unreadable file, a wrong label); the message names the file."""


@dataclass(frozen=True)
class LabelFormat:
    """How the label values in the two folders are to be read.

    The default is the official ADE20K format: ground truth 0 = "other" (not
    evaluated) and 1..150 = classes, predictions 1..150.
    """

    num_classes: int = 150
    ignore_index: int | None = 255
    gt_zero_based: bool = False    # ground truth holds 0..K-1 (no "other" label to drop)
    pred_zero_based: bool = False  # predictions hold 0..K-1 instead of 1..K
    resize: str | None = None      # "nearest": resize predictions to the ground truth's size

    def accumulator(self, n_threads: int | None = None) -> ConfusionMatrix:
        return ConfusionMatrix(self.num_classes, ignore_index=self.ignore_index,
                               reduce_zero_label=not self.gt_zero_based, n_threads=n_threads)

    def describe(self) -> dict:
        k = self.num_classes
        return {
            "num_classes": k,
            "ignore_index": self.ignore_index,
            "ground_truth_labels": f"0..{k - 1}" if self.gt_zero_based else f"1..{k} (0 = other, not evaluated)",
            "prediction_labels": f"0..{k - 1}" if self.pred_zero_based else f"1..{k}",
            "resize": self.resize,
        }


@dataclass(frozen=True)
class LabelPair:
    key: str      # relative path without the suffix, "/"-separated
    pred: Path
    gt: Path


@dataclass(frozen=True)
class Pairing:
    pairs: tuple[LabelPair, ...]
    missing_pred: tuple[str, ...]  # ground-truth files with no prediction
    missing_gt: tuple[str, ...]    # predictions with no ground truth

    def digest(self) -> str:
        """sha256 of the paired keys, sorted, one per line: identifies the evaluated file set."""
        h = hashlib.sha256()
        for pair in self.pairs:
            h.update(pair.key.encode("utf-8") + b"\n")
        return h.hexdigest()


def find_label_maps(folder: str | os.PathLike) -> dict[str, Path]:
    """Every ``*.png`` under ``folder`` (recursively, hidden entries skipped), by pairing key."""
    root = Path(folder)
    if not root.is_dir():
        raise NotADirectoryError(f"{root}: not a directory")
    found: dict[str, Path] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith(".") or not name.lower().endswith(LABEL_SUFFIX):
                continue
            path = Path(dirpath, name)
            key = path.relative_to(root).as_posix()[: -len(LABEL_SUFFIX)]
            if key in found:
                raise InputError(f"{path}: same name as {found[key]} apart from the suffix's case")
            found[key] = path
    return found


def pair_folders(pred_dir: str | os.PathLike, gt_dir: str | os.PathLike) -> Pairing:
    preds = find_label_maps(pred_dir)
    gts = find_label_maps(gt_dir)
    keys = sorted(preds.keys() & gts.keys())
    return Pairing(
        pairs=tuple(LabelPair(k, preds[k], gts[k]) for k in keys),
        missing_pred=tuple(sorted(gts.keys() - preds.keys())),
        missing_gt=tuple(sorted(preds.keys() - gts.keys())),
    )


def _pil_image_module():
    try:
        from PIL import Image
    except ImportError:
        raise MissingDependencyError("reading PNG label maps needs Pillow: pip install 'ade20k-metrics[cli]'") from None
    return Image


def _open_label_image(path: Path):
    """Open ``path`` with Pillow, checking it holds one integer label per pixel; returns the image (not decoded)."""
    Image = _pil_image_module()
    try:
        image = Image.open(path)
    except (OSError, SyntaxError, ValueError) as e:  # UnidentifiedImageError is an OSError
        raise InputError(f"{path}: cannot read image: {e}") from None
    mode = image.mode
    if mode in _INTEGER_MODES:
        return image
    image.close()
    if mode in _FLOAT_MODES:
        raise InputError(f"{path}: holds floating-point values (mode {mode}); label maps must be integers")
    bands = Image.getmodebands(mode)
    raise InputError(f"{path}: has {bands} channels (mode {mode}); a label map must be a single-channel "
                     "image of integer labels (a colourised RGB rendering cannot be scored)")


def _decode_in_place(image) -> np.ndarray | None:
    """Decode an 8-bit image straight into a NumPy array, or return None where that is not possible.

    ``np.asarray(image)`` goes through ``Image.tobytes()``, which copies the
    pixels twice and costs a fifth to a third of a PNG's decoding time.  An
    image file that is not loaded yet decodes into whatever image memory of
    its own mode and size it already has, so give it memory mapped over a
    NumPy array.  Whether that happened is checked afterwards (identity of the
    image memory), so a Pillow that reallocates anyway only costs the copy.
    """
    from PIL import Image, ImageFile

    if image.mode not in ("L", "P") or not isinstance(image, ImageFile.ImageFile) or not image.tile:
        return None
    array = np.empty((image.height, image.width), dtype=np.uint8)
    memory = Image.frombuffer(image.mode, image.size, array, "raw", image.mode, 0, 1).im
    image.im = memory
    image.load()
    return array if image.im is memory else None


def _decode(image, path: Path) -> np.ndarray:
    try:
        array = _decode_in_place(image)
        if array is not None:
            return array
        image.load()
        return np.asarray(image)
    except (OSError, SyntaxError, ValueError, EOFError) as e:  # truncated or corrupt data
        raise InputError(f"{path}: cannot decode image: {e}") from None
    finally:
        image.close()


def read_label_map(path: str | os.PathLike) -> np.ndarray:
    """Decode one label-map image to an integer array (H, W); InputError naming the file if it is unusable."""
    path = Path(path)
    return _decode(_open_label_image(path), path)


def load_pair(pair: LabelPair, label_format: LabelFormat) -> tuple[np.ndarray, np.ndarray]:
    """Decode (prediction, ground truth) of one pair, checking sizes (or resizing, on request)."""
    gt_image = _open_label_image(pair.gt)
    try:
        pred_image = _open_label_image(pair.pred)
    except BaseException:
        gt_image.close()
        raise
    if pred_image.size != gt_image.size:
        if label_format.resize != "nearest":
            pred_size, gt_size = pred_image.size, gt_image.size
            pred_image.close()
            gt_image.close()
            raise InputError(f"{pair.pred}: prediction is {pred_size[0]}x{pred_size[1]} but the ground truth "
                             f"{pair.gt} is {gt_size[0]}x{gt_size[1]} (width x height); "
                             "pass --resize nearest to resize predictions as the ADE20K devkit does")
        Image = _pil_image_module()
        try:
            resized = pred_image.resize(gt_image.size, getattr(Image, "Resampling", Image).NEAREST)
        except (OSError, SyntaxError, ValueError, EOFError) as e:
            gt_image.close()
            raise InputError(f"{pair.pred}: cannot decode image: {e}") from None
        finally:
            pred_image.close()
        pred_image = resized
    try:
        pred = _decode(pred_image, pair.pred)
    except BaseException:
        gt_image.close()
        raise
    gt = _decode(gt_image, pair.gt)
    return pred, gt


def to_train_ids(pred: np.ndarray, label_format: LabelFormat) -> np.ndarray:
    """Predictions as 0..K-1 class ids; 1-based ones are shifted down by one."""
    if label_format.pred_zero_based:
        return pred
    if pred.dtype.kind == "u" and int(np.iinfo(pred.dtype).max) >= label_format.num_classes:
        # Kept in the file's own (narrow) dtype: a 0 wraps to the dtype's maximum, which is
        # still out of range, so it is reported as bad (in the file's numbering, by label_error).
        return np.subtract(pred, 1, dtype=pred.dtype, casting="unsafe")
    return pred.astype(np.int64) - 1


def label_error(pair: LabelPair, pred_raw: np.ndarray, gt: np.ndarray, label_format: LabelFormat,
                 cause: ValueError) -> InputError:
    """Describe the out-of-range labels of a pair in the files' own numbering (error path only)."""
    k = label_format.num_classes
    rows = reference.target_rows(gt, k, label_format.ignore_index, not label_format.gt_zero_based)
    bad_gt = rows == reference.INVALID
    if bad_gt.any():
        values = np.unique(gt[bad_gt])
        allowed = f"0..{k - 1}" if label_format.gt_zero_based else f"0..{k} (0 = other)"
        if label_format.ignore_index is not None:
            allowed += f" or {label_format.ignore_index} (ignored)"
        return InputError(f"{pair.gt}: {int(bad_gt.sum())} pixel(s) with labels outside {allowed}, "
                          f"e.g. {int(values[0])} (values seen: {_few(values)})")
    lo, hi = (0, k - 1) if label_format.pred_zero_based else (1, k)
    p = pred_raw.astype(np.int64)
    bad_pred = (rows >= 0) & ((p < lo) | (p > hi))
    if not bad_pred.any():  # not a label problem after all; keep the kernel's words
        return InputError(f"{pair.pred}: {cause}")
    values = np.unique(pred_raw[bad_pred])
    hint = ""
    if not label_format.pred_zero_based and int(values[0]) == 0:
        hint = "; if predictions are 0-based class ids, pass --pred-zero-based"
    elif label_format.pred_zero_based and int(values[-1]) == k:
        hint = "; if predictions are 1-based (official ADE20K format), drop --pred-zero-based"
    return InputError(f"{pair.pred}: {int(bad_pred.sum())} evaluated pixel(s) with labels outside {lo}..{hi}, "
                      f"e.g. {int(values[0])} (values seen: {_few(values)}){hint}")


def _few(values: np.ndarray, limit: int = 8) -> str:
    shown = ", ".join(str(int(v)) for v in values[:limit])
    return shown + (f", ... ({len(values)} distinct)" if len(values) > limit else "")


def iter_decoded(pairs: Sequence[LabelPair], label_format: LabelFormat, workers: int,
                 max_in_flight: int | None = None) -> Iterator[tuple[LabelPair, np.ndarray, np.ndarray]]:
    """Yield (pair, pred, gt) in order, decoded ahead by ``workers`` threads.

    At most ``max_in_flight`` pairs (default 2 per worker) are decoded or
    waiting at any time, which bounds memory.  An error in a pair is raised
    when that pair's turn comes.
    """
    workers = max(1, int(workers))
    window = max(1, max_in_flight if max_in_flight is not None else 2 * workers)
    if workers == 1 and window == 1:
        for pair in pairs:
            yield (pair, *load_pair(pair, label_format))
        return
    executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ade20k-decode")
    in_flight: deque[tuple[LabelPair, Future]] = deque()
    upcoming = iter(pairs)
    try:
        for pair in upcoming:
            in_flight.append((pair, executor.submit(load_pair, pair, label_format)))
            if len(in_flight) >= window:
                break
        while in_flight:
            pair, future = in_flight.popleft()
            pred, gt = future.result()
            following = next(upcoming, None)
            if following is not None:
                in_flight.append((following, executor.submit(load_pair, following, label_format)))
            yield pair, pred, gt
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


def evaluate_pairs(pairs: Sequence[LabelPair], label_format: LabelFormat = LabelFormat(), *,
                   threads: int | None = None,
                   on_pair: Callable[[int], None] | None = None) -> ConfusionMatrix:
    """The confusion matrix of all pairs (raises InputError naming the first bad file, in order).

    ``threads``: decoding threads (None: the kernel's default thread count).
    ``on_pair(done)`` is called after each pair, for progress reporting.
    """
    from ..core.threads import resolve_threads

    workers = resolve_threads(threads)
    # One image is ~0.35 Mpixel: the kernel counts it in ~0.1 ms on one thread,
    # far below decoding time, so its threads would only compete with the decoders.
    cm = label_format.accumulator(n_threads=1)
    for done, (pair, pred_raw, gt) in enumerate(iter_decoded(pairs, label_format, workers), start=1):
        pred = to_train_ids(pred_raw, label_format)
        try:
            cm.update(pred, gt)
        except ValueError as e:
            raise label_error(pair, pred_raw, gt, label_format, e) from None
        if on_pair is not None:
            on_pair(done)
    return cm
