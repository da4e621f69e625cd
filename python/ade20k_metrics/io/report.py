"""Reports of an evaluation: the printed table, JSON, CSV, Markdown and the per-class figure.

Everything here reads a confusion matrix and its ``Metrics``; nothing is
counted again.  Files are written atomically: into a temporary file in the
target's folder, then renamed over the target, so a reader (or a crash)
never sees half a report; ``OutputSet`` does that for all the files of a run
at once, so that a run leaves all of them or none.
"""
from __future__ import annotations

import contextlib
import csv
import errno
import io
import json
import math
import os
import platform
import secrets
import signal
import sys
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np

from ..datasets import ade20k

# Per-class fields that newer ``Metrics`` versions may carry; reported when present.
_OPTIONAL_PER_CLASS = ("precision", "dice", "fscore", "boundary_iou", "boundary_f1")
_OPTIONAL_SCALARS = ("mprecision", "mrecall", "mdice", "mfscore", "fwiou", "mboundary_iou", "mboundary_f1")
# Boundary metrics (ConfusionMatrix(boundary=, boundary_f1=)): table columns when the rows carry them.
_BOUNDARY_COLUMNS = (("boundary_iou", "BIoU"), ("boundary_f1", "BF"))


class MissingDependencyError(ImportError):
    """An optional library (Pillow, matplotlib) that a requested feature needs is not installed."""


@dataclass(frozen=True)
class ClassInfo:
    names: tuple[str, ...]
    stuff: np.ndarray | None  # bool (K,), None when the dataset has no stuff/thing split

    @classmethod
    def for_num_classes(cls, num_classes: int) -> ClassInfo:
        if num_classes == ade20k.NUM_CLASSES:
            table = ade20k.classes()
            return cls(table.names, table.stuff)
        return cls(tuple(f"class {i}" for i in range(num_classes)), None)


def _nanmean(values: np.ndarray) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(np.nanmean(values)) if values.size else float("nan")


def summary(metrics, classes: ClassInfo) -> dict[str, float]:
    """Scalar metrics (fractions): mIoU, aAcc, mAcc, ADE20K score, mIoU over stuff and things, and extras.

    The stuff and thing means average the convention's per-class IoU the way
    the convention's mIoU does (NaN classes are the ones it leaves out).
    """
    score = getattr(metrics, "score", None)
    if score is None:
        score = (metrics.aacc + metrics.miou) / 2
    out = {"miou": float(metrics.miou), "aacc": float(metrics.aacc), "macc": float(metrics.macc),
           "score": float(score)}
    if classes.stuff is not None:
        iou = np.asarray(metrics.iou, dtype=np.float64)
        out["miou_stuff"] = _nanmean(iou[classes.stuff])
        out["miou_thing"] = _nanmean(iou[~classes.stuff])
    for name in _OPTIONAL_SCALARS:
        value = getattr(metrics, name, None)
        if isinstance(value, (float, int, np.floating)):
            out[name] = float(value)
    return out


def per_class(matrix: np.ndarray, metrics, classes: ClassInfo) -> list[dict]:
    """One record per class: id, name, stuff/thing, iou, acc (and precision, dice, fscore if computed), pixels."""
    m = np.asarray(matrix)
    gt_pixels = m.sum(axis=1)
    pred_pixels = m.sum(axis=0)
    extra = {name: np.asarray(getattr(metrics, name)) for name in _OPTIONAL_PER_CLASS
             if getattr(metrics, name, None) is not None}
    rows = []
    for c, name in enumerate(classes.names):
        row = {"id": c, "name": name,
               "kind": None if classes.stuff is None else ("stuff" if classes.stuff[c] else "thing"),
               "iou": float(metrics.iou[c]), "acc": float(metrics.acc[c])}
        for field, values in extra.items():
            row[field] = float(values[c])
        row["gt_pixels"] = int(gt_pixels[c])
        row["pred_pixels"] = int(pred_pixels[c])
        rows.append(row)
    return rows


def _percent(x: float | None, width: int = 6) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "nan".rjust(width)
    return f"{100 * x:{width}.2f}"


_SUMMARY_LABELS = {"miou": "mIoU", "aacc": "aAcc", "macc": "mAcc", "score": "score", "miou_stuff": "mIoU stuff",
                   "miou_thing": "mIoU thing", "mprecision": "mPrecision", "mrecall": "mRecall",
                   "mdice": "mDice", "mfscore": "mFscore", "fwiou": "fwIoU", "mboundary_iou": "mBoundaryIoU",
                   "mboundary_f1": "mBF"}


def _boundary_columns(rows: list[dict]) -> list[tuple[str, str]]:
    return [(field, label) for field, label in _BOUNDARY_COLUMNS if rows and field in rows[0]]


def table_notes(rows: list[dict], scalars: dict[str, float], convention: str = "mmseg") -> list[str]:
    """Why numbers shown side by side differ, or are equal, where a reader would not expect it."""
    notes = []
    if "mdice" in scalars and "mfscore" in scalars:
        dropped = sum(1 for r in rows if "fscore" in r and "dice" in r
                      and math.isnan(r["fscore"]) and not math.isnan(r["dice"]))
        if dropped:
            notes.append(f"mDice and mFscore differ although each class's Dice equals its F-score: {dropped} "
                         "class(es) with no pixel right have F-score nan (0/0 precision and recall) and drop out of "
                         "mFscore, while their Dice (0) counts in mDice")
    if "mrecall" in scalars and "macc" in scalars:
        notes.append("mRecall is mAcc: a class's recall and its accuracy are both tp / its ground-truth pixels")
    if convention == "mmseg" and any(r["gt_pixels"] == 0 for r in rows):
        notes.append("a class with 0 ground-truth pixels has no accuracy (nan) and, if also never predicted, no IoU; "
                     "one predicted but absent from the ground truth has IoU 0 (mmseg convention)")
    return notes


def format_table(rows: list[dict], scalars: dict[str, float], *, convention: str, pixels: int,
                 images: int, all_classes: bool = True) -> str:
    """The human-readable report: per-class table (with each class's ground-truth and predicted pixels) and
    summary, in percent, then notes on numbers that would puzzle a reader."""
    out = io.StringIO()
    width = max([len("class")] + [len(r["name"]) for r in rows])
    gt_w = max([len("gt pixels")] + [len(f"{r['gt_pixels']:,}") for r in rows])
    pred_w = max([len("pred pixels")] + [len(f"{r['pred_pixels']:,}") for r in rows])
    boundary = _boundary_columns(rows)
    head = "".join(f"  {label:>6}" for _, label in boundary)
    out.write(f"{'id':>3}  {'class':<{width}}  {'IoU':>6}  {'Acc':>6}{head}  {'gt pixels':>{gt_w}}  "
              f"{'pred pixels':>{pred_w}}  kind\n")
    for r in rows:
        if not all_classes and r["gt_pixels"] == 0 and r["pred_pixels"] == 0:
            continue
        cells = "".join(f"  {_percent(r[field])}" for field, _ in boundary)
        out.write(f"{r['id']:>3}  {r['name']:<{width}}  {_percent(r['iou'])}  {_percent(r['acc'])}{cells}  "
                  f"{r['gt_pixels']:>{gt_w},}  {r['pred_pixels']:>{pred_w},}  {r['kind'] or '-'}\n")
    out.write("\n")
    out.write(f"{images} image pair(s), {pixels} evaluated pixels, {convention} convention, percent\n")
    label_width = max([11] + [len(_SUMMARY_LABELS.get(key, key)) for key in scalars])
    for key, value in scalars.items():
        out.write(f"{_SUMMARY_LABELS.get(key, key):<{label_width}} {_percent(value)}\n")
    for note in table_notes(rows, scalars, convention):
        out.write(f"note: {note}\n")
    return out.getvalue()


def _json_number(x):
    """JSON has no NaN: undefined metrics are written as null."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _json_clean(obj):
    if isinstance(obj, dict):
        return {k: _json_clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_clean(v) for v in obj]
    return _json_number(obj)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def environment(**run: object) -> dict:
    """Versions and machine of this run, plus the run's own settings given as keywords."""
    from .._version import __version__
    from ..core.kernel import openmp_enabled, simd

    try:
        from PIL import __version__ as pillow_version
    except ImportError:
        pillow_version = None
    return {
        "ade20k_metrics": __version__,
        "numpy": np.__version__,
        "pillow": pillow_version,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "openmp": openmp_enabled(),
        "simd": simd(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **run,
    }


def report_dict(matrix: np.ndarray, metrics, classes: ClassInfo, env: dict) -> dict:
    """The JSON document: "metrics" (fractions, null = undefined), "per_class", "environment", "confusion_matrix"."""
    return _json_clean({
        "format": "ade20k-metrics evaluate",
        "version": 1,
        "metrics": summary(metrics, classes),
        "per_class": per_class(matrix, metrics, classes),
        "environment": env,
        # rows = ground truth, columns = prediction: enough to recompute under any convention
        "confusion_matrix": np.asarray(matrix).tolist(),
        **_boundary_document(metrics),
    })


def _boundary_document(metrics) -> dict:
    """With boundary=: the (K+1, K+1) band counts (row/column K = not in the band), to recompute Boundary IoU."""
    band = getattr(metrics, "boundary_matrix", None)
    return {} if band is None else {"boundary_matrix": np.asarray(band).tolist()}


# -- names and writing files --------------------------------------------------------------------

def printable(text) -> str:
    """``text`` (a str, bytes or path) as one line that prints and encodes as UTF-8 anywhere.

    A file name may hold bytes that are not UTF-8 (Python carries them as lone
    surrogates, which neither a UTF-8 terminal nor a JSON reader accepts) and
    control characters (a newline, a terminal escape).  Those become
    ``\\xNN`` / ``\\uNNNN`` escapes; everything else, non-ASCII letters
    included, is unchanged.  For messages and reports; never for opening files.
    """
    if isinstance(text, os.PathLike):
        text = os.fspath(text)
    if isinstance(text, bytes):
        text = os.fsdecode(text)
    text = str(text)
    if text.isprintable():
        return text
    out = []
    for ch in text:
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte, as os.fsdecode carries it
            out.append(f"\\x{code - 0xDC00:02x}")
        elif ch.isprintable() or ch == " ":
            out.append(ch)
        elif code < 0x100:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    return "".join(out)


_TEMPORARY_PREFIX = ".tmp-"


def _create_temporary(path: str) -> str:
    """Create an empty, new file beside ``path`` (hidden, same suffix) and return its name.

    Opened with mode 0666 so that the process's umask gives the file the
    permissions any new file gets (mkstemp's 0600 would need the umask read,
    and reading it means setting it, which races with other threads).
    """
    directory = os.path.dirname(os.path.abspath(path))
    suffix = os.path.splitext(path)[1]
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = os.path.join(directory, f"{_TEMPORARY_PREFIX}{secrets.token_hex(6)}{suffix}")
        try:
            os.close(os.open(tmp, flags, 0o666))
        except FileExistsError:
            continue
        return tmp
    raise FileExistsError(errno.EEXIST, "no free temporary file name", directory)


def _remove_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def atomic_write(path: str | os.PathLike, write: Callable[[io.BufferedWriter], None]) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it over ``path``.

    On any error (KeyboardInterrupt included) the temporary file is removed
    and ``path`` is untouched.
    """
    path = os.fspath(path)
    with _signals_held():  # no Ctrl-C between creating the temporary and owning its removal
        tmp = _create_temporary(path)
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        _remove_quietly(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


class OutputError(Exception):
    """An output file that cannot be written; the message names it as the user gave it."""


@dataclass
class _Output:
    option: str   # how the user named it, e.g. "--json"
    path: str     # as the user gave it
    target: str   # what is replaced at the end: ``path``, or the file a symbolic link there points to
    temporary: str


class OutputSet:
    """The files one run writes: all of them or none of them.

    ``add(option, path)`` creates an empty temporary file beside ``path`` at
    once, so that an output which cannot be written fails before any work,
    naming the path as given.  ``write(path, writer)`` has ``writer`` fill that
    temporary (``writer(temporary_path)``); ``commit()`` renames every
    temporary over its target, with Ctrl-C (and any other Python-level
    SIGINT/SIGTERM handler) held back until the last rename is done.  Used as
    a context manager: leaving it without ``commit()`` -- an error, a
    KeyboardInterrupt -- removes every temporary and leaves every target as
    it was.
    """

    def __init__(self) -> None:
        self._outputs: list[_Output] = []
        self.committed = False

    def __enter__(self) -> OutputSet:
        return self

    def __exit__(self, *exc) -> None:
        if not self.committed:
            self.discard()

    def add(self, option: str, path: str | os.PathLike) -> None:
        path = os.fspath(path)
        # Replacing a symbolic link would cut it; replace the file it points to instead.
        target = os.path.realpath(path) if os.path.islink(path) else path
        with _signals_held():  # the temporary is listed (to be removed) as soon as it exists
            try:
                temporary = _create_temporary(target)
            except OSError as e:
                folder = printable(os.path.dirname(os.path.abspath(target)))
                raise OutputError(f"{option} {printable(path)}: cannot be written (creating a file in {folder}: "
                                  f"{e.strerror or e})") from None
            self._outputs.append(_Output(option, path, target, temporary))

    def _find(self, path) -> _Output:
        path = os.fspath(path)
        for out in self._outputs:
            if out.path == path:
                return out
        raise KeyError(path)

    def temporary(self, path) -> str:
        """The temporary file that stands for ``path`` (added before) until ``commit()``."""
        return self._find(path).temporary

    def write(self, path, writer: Callable[[str], None]) -> None:
        """Fill the temporary of ``path`` (added before) with ``writer(temporary_path)``."""
        out = self._find(path)
        try:
            writer(out.temporary)
        except OSError as e:
            raise OutputError(f"{out.option} {printable(out.path)}: cannot be written ({e.strerror or e})") from None

    def commit(self) -> None:
        """Rename every temporary over its target (all written before this is called)."""
        with _signals_held():
            done = []
            for out in self._outputs:
                try:
                    os.replace(out.temporary, out.target)
                except OSError as e:
                    self.committed = True  # what is renamed stays; the rest is removed below
                    for rest in self._outputs[len(done):]:
                        _remove_quietly(rest.temporary)
                    written = ", ".join(f"{o.option} {printable(o.path)}" for o in done) or "none"
                    raise OutputError(f"{out.option} {printable(out.path)}: cannot be written ({e.strerror or e}); "
                                      f"outputs already replaced: {written}") from None
                done.append(out)
            self.committed = True

    def discard(self) -> None:
        for out in self._outputs:
            _remove_quietly(out.temporary)
        self._outputs = []


@contextlib.contextmanager
def _signals_held():
    """Hold back SIGINT and SIGTERM where Python handles them; deliver them when the block ends.

    Only the main thread can set handlers; elsewhere the block runs as it is.
    Signals left to the operating system (SIG_DFL, SIG_IGN) are not touched.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = {}
    for sig in (signal.SIGINT, getattr(signal, "SIGTERM", None)):
        if sig is None:
            continue
        handler = signal.getsignal(sig)
        if callable(handler):
            previous[sig] = handler
            signal.signal(sig, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for signum in caught:
            previous[signum](signum, None)


def write_json(path, document: dict) -> None:
    atomic_write_text(path, json.dumps(document, indent=1, allow_nan=False) + "\n")


def _csv_value(x) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    if isinstance(x, float):
        return repr(x)
    return str(x)


def csv_text(rows: list[dict]) -> str:
    """Per-class CSV: fractions with full precision, empty cells where undefined."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(list(rows[0]))
    for r in rows:
        writer.writerow([_csv_value(v) for v in r.values()])
    return out.getvalue()


def markdown_text(rows: list[dict], scalars: dict[str, float], *, convention: str, images: int,
                  pixels: int) -> str:
    out = io.StringIO()
    out.write(f"## Summary\n\n{images} image pair(s), {pixels} evaluated pixels, "
              f"{convention} convention, percent.\n\n")
    out.write("| metric | value |\n| --- | ---: |\n")
    for key, value in scalars.items():
        out.write(f"| {_SUMMARY_LABELS.get(key, key)} | {_percent(value, 0).strip()} |\n")
    notes = table_notes(rows, scalars, convention)
    if notes:
        out.write("\n" + "".join(f"- {note}\n" for note in notes))
    boundary = _boundary_columns(rows)
    head = "".join(f" {label} |" for _, label in boundary)
    align = " ---: |" * len(boundary)
    out.write(f"\n## Per class\n\n| id | class | IoU | Acc |{head} gt pixels | pred pixels | kind |\n"
              f"| ---: | --- | ---: | ---: |{align} ---: | ---: | --- |\n")
    for r in rows:
        name = r["name"].replace("|", "\\|")
        cells = "".join(f" {_percent(r[field], 0).strip()} |" for field, _ in boundary)
        out.write(f"| {r['id']} | {name} | {_percent(r['iou'], 0).strip()} | {_percent(r['acc'], 0).strip()} "
                  f"|{cells} {r['gt_pixels']} | {r['pred_pixels']} | {r['kind'] or '-'} |\n")
    return out.getvalue()


# -- pictures ---------------------------------------------------------------------------------------

def import_pyplot():
    """matplotlib's pyplot on a file-only backend, or a clear error if matplotlib is missing."""
    try:
        import matplotlib
    except ImportError:
        raise MissingDependencyError("plots need matplotlib: pip install 'ade20k-metrics[plot]'") from None
    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path) -> None:
    fmt = os.path.splitext(os.fspath(path))[1].lstrip(".").lower() or "png"
    atomic_write(path, lambda f: fig.savefig(f, format=fmt, dpi=120))


STUFF_COLOUR = "#d08c2f"
THING_COLOUR = "#3b75af"
OTHER_COLOUR = "#777777"


def most_confused_classes(matrix: np.ndarray, count: int = 12) -> np.ndarray:
    """Classes in the largest off-diagonal cells, by descending cell size, at most ``count``."""
    m = np.asarray(matrix, dtype=np.int64).copy()
    np.fill_diagonal(m, 0)
    chosen: list[int] = []
    for flat in np.argsort(m, axis=None)[::-1]:
        if m.flat[flat] == 0 or len(chosen) >= count:
            break
        for c in np.unravel_index(flat, m.shape):
            if int(c) not in chosen and len(chosen) < count:
                chosen.append(int(c))
    return np.array(chosen, dtype=np.int64)


def plot_report(path, matrix: np.ndarray, metrics, classes: ClassInfo, *, title: str = "") -> None:
    """Per-class IoU bars (sorted, stuff/thing coloured) beside a heat map of the most-confused classes."""
    plt = import_pyplot()
    iou = np.asarray(metrics.iou, dtype=np.float64)
    shown = np.flatnonzero(~np.isnan(iou))
    order = shown[np.argsort(-iou[shown], kind="stable")]
    fig, (bars, heat) = plt.subplots(1, 2, figsize=(16, 7), gridspec_kw={"width_ratios": [2.2, 1]})
    if classes.stuff is None:
        colours = [OTHER_COLOUR] * len(order)
    else:
        colours = [STUFF_COLOUR if classes.stuff[c] else THING_COLOUR for c in order]
    bars.bar(np.arange(len(order)), 100 * iou[order], color=colours, width=0.85)
    bars.set_xlim(-1, max(len(order), 1))
    bars.set_ylim(0, 100)
    bars.set_ylabel("IoU (%)")
    bars.set_title(f"per-class IoU, sorted (mIoU {100 * metrics.miou:.2f}%)")
    if len(order) <= 60:
        bars.set_xticks(np.arange(len(order)))
        bars.set_xticklabels([classes.names[c] for c in order], rotation=90, fontsize=7)
    else:
        bars.set_xticks([])
        bars.set_xlabel(f"{len(order)} classes, best to worst")
    if classes.stuff is not None:
        from matplotlib.patches import Patch

        bars.legend(handles=[Patch(color=STUFF_COLOUR, label="stuff"), Patch(color=THING_COLOUR, label="thing")])
    bars.axhline(100 * metrics.miou, color="black", linewidth=0.8, linestyle="--")

    chosen = most_confused_classes(matrix)
    m = np.asarray(matrix, dtype=np.float64)
    if chosen.size:
        sub = m[np.ix_(chosen, chosen)]
        gt_totals = m[chosen].sum(axis=1, keepdims=True)
        share = np.divide(sub, gt_totals, out=np.zeros_like(sub), where=gt_totals > 0)
        np.fill_diagonal(share, np.nan)  # correct pixels would swamp the scale
        image = heat.imshow(100 * share, cmap="magma_r")
        labels = [classes.names[c] for c in chosen]
        heat.set_xticks(np.arange(len(chosen)))
        heat.set_xticklabels(labels, rotation=90, fontsize=8)
        heat.set_yticks(np.arange(len(chosen)))
        heat.set_yticklabels(labels, fontsize=8)
        heat.set_xlabel("predicted as")
        heat.set_ylabel("ground truth")
        fig.colorbar(image, ax=heat, fraction=0.046, pad=0.04, label="% of the ground-truth class's pixels")
    else:
        heat.text(0.5, 0.5, "no confusions", ha="center", va="center")
        heat.set_axis_off()
    heat.set_title("most-confused classes")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    try:
        save_figure(fig, path)
    finally:
        plt.close(fig)


# -- side-by-side label maps (NumPy + Pillow only) ------------------------------------------------

def class_palette(num_classes: int) -> np.ndarray:
    """(K, 3) uint8 colours: ADE20K's own for its 150 classes, fixed pseudo-random ones beyond."""
    palette = np.empty((num_classes, 3), dtype=np.uint8)
    known = ade20k.classes().palette
    n = min(num_classes, len(known))
    palette[:n] = known[:n]
    if num_classes > n:
        palette[n:] = np.random.default_rng(20161).integers(40, 256, size=(num_classes - n, 3), dtype=np.uint8)
    return palette


def colourise(class_ids: np.ndarray, palette: np.ndarray, *, background=(0, 0, 0)) -> np.ndarray:
    """RGB rendering of 0..K-1 class ids; anything else (ignored, "other") gets ``background``."""
    ids = np.asarray(class_ids).astype(np.int64)
    valid = (ids >= 0) & (ids < len(palette))
    rgb = np.empty(ids.shape + (3,), dtype=np.uint8)
    rgb[...] = background
    rgb[valid] = palette[ids[valid]]
    return rgb


ERROR_COLOUR = (255, 0, 0)


def comparison_panels(pred_ids: np.ndarray, gt_ids: np.ndarray, evaluated: np.ndarray, palette: np.ndarray,
                      photo: np.ndarray | None = None) -> list[tuple[str, np.ndarray]]:
    """(title, RGB) panels: the photo if given, ground truth, prediction, errors.

    The errors panel dims the photo (or the ground truth) and paints wrong
    evaluated pixels red; pixels not evaluated are darkened further.
    """
    gt_rgb = colourise(gt_ids, palette)
    pred_rgb = colourise(pred_ids, palette)
    wrong = evaluated & (pred_ids != gt_ids)
    base = (photo if photo is not None else gt_rgb).astype(np.float32)
    grey = base.mean(axis=-1, keepdims=True)
    errors = 0.35 * base + 0.35 * grey
    errors[~evaluated] *= 0.4
    errors = errors.astype(np.uint8)
    errors[wrong] = ERROR_COLOUR
    share = wrong.sum() / max(int(evaluated.sum()), 1)
    panels = [] if photo is None else [("image", photo)]
    panels += [("ground truth", gt_rgb), ("prediction", pred_rgb),
               (f"errors (red): {100 * share:.1f}% of evaluated pixels", errors)]
    return panels


def side_by_side(panels: list[tuple[str, np.ndarray]], *, gap: int = 6, header: int = 18) -> np.ndarray:
    """One RGB image of equal-height panels in a row, each under a title strip."""
    from PIL import Image, ImageDraw

    h = panels[0][1].shape[0]
    width = sum(p.shape[1] for _, p in panels) + gap * (len(panels) - 1)
    canvas = Image.new("RGB", (width, h + header), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    x = 0
    for title, rgb in panels:
        canvas.paste(Image.fromarray(np.ascontiguousarray(rgb)), (x, header))
        draw.text((x + 3, 3), title, fill=(0, 0, 0))
        x += rgb.shape[1] + gap
    return np.asarray(canvas)


def save_rgb(path, rgb: np.ndarray) -> None:
    """Write an RGB array as an image (format from the suffix, PNG by default), atomically."""
    from PIL import Image

    image = Image.fromarray(rgb)
    suffix = os.path.splitext(os.fspath(path))[1].lower()
    fmt = Image.registered_extensions().get(suffix, "PNG")
    atomic_write(path, lambda f: image.save(f, format=fmt))
