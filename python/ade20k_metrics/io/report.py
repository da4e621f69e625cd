"""Reports of an evaluation: the printed table, JSON, CSV, Markdown and the per-class figure.

Everything here reads a confusion matrix and its ``Metrics``; nothing is
counted again.  Files are written atomically: into a temporary file in the
target's folder, then renamed over the target, so a reader (or a crash)
never sees half a report.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import platform
import sys
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np

from ..datasets import ade20k

# Per-class fields that newer ``Metrics`` versions may carry; reported when present.
_OPTIONAL_PER_CLASS = ("precision", "dice", "fscore")
_OPTIONAL_SCALARS = ("mprecision", "mrecall", "mdice", "mfscore", "fwiou")


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
                   "mdice": "mDice", "mfscore": "mFscore", "fwiou": "fwIoU"}


def format_table(rows: list[dict], scalars: dict[str, float], *, convention: str, pixels: int,
                 images: int, all_classes: bool = True) -> str:
    """The human-readable report: per-class table and summary, in percent."""
    out = io.StringIO()
    width = max([len("class")] + [len(r["name"]) for r in rows])
    out.write(f"{'id':>3}  {'class':<{width}}  {'IoU':>6}  {'Acc':>6}  kind\n")
    for r in rows:
        if not all_classes and r["gt_pixels"] == 0 and r["pred_pixels"] == 0:
            continue
        out.write(f"{r['id']:>3}  {r['name']:<{width}}  {_percent(r['iou'])}  {_percent(r['acc'])}  "
                  f"{r['kind'] or '-'}\n")
    out.write("\n")
    out.write(f"{images} image pair(s), {pixels} evaluated pixels, {convention} convention, percent\n")
    for key, value in scalars.items():
        out.write(f"{_SUMMARY_LABELS.get(key, key):<11} {_percent(value)}\n")
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
    })


# -- writing files ----------------------------------------------------------------------------------

def atomic_write(path: str | os.PathLike, write: Callable[[io.BufferedWriter], None]) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it over ``path``.

    On any error the temporary file is removed and ``path`` is untouched.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.splitext(path)[1], dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _umask() -> int:
    # mkstemp creates 0600 files; reports should get the usual permissions instead.
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


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
    out.write("\n## Per class\n\n| id | class | IoU | Acc | kind |\n| ---: | --- | ---: | ---: | --- |\n")
    for r in rows:
        name = r["name"].replace("|", "\\|")
        out.write(f"| {r['id']} | {name} | {_percent(r['iou'], 0).strip()} | {_percent(r['acc'], 0).strip()} "
                  f"| {r['kind'] or '-'} |\n")
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
