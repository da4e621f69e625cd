"""Figures for papers: per-class IoU with names, the most-confused class pairs, a comparison of two runs.

Made for print: class names at 7 pt or more, 150 classes split over three
columns of horizontal bars (sorted best to worst, read top to bottom, left to
right), classes without a value marked as such rather than dropped, the mean
drawn and named in a legend.  The format follows the file's suffix (.png at
150 dpi, .pdf or .svg as vectors); files are written atomically.
"""
from __future__ import annotations

import io
import math
import os

import numpy as np

from .report import OTHER_COLOUR, STUFF_COLOUR, THING_COLOUR, ClassInfo, atomic_write, import_pyplot

DPI = 150
ROW_INCHES = 0.165   # one class's bar: room for a 7 pt name
NAME_POINTS = 7
ABSENT_COLOUR = "#9a9a9a"


def render(fig, path) -> bytes:
    """The figure as the file ``path`` would hold it (format from the suffix), in memory."""
    fmt = os.path.splitext(os.fspath(path))[1].lstrip(".").lower() or "png"
    buffer = io.BytesIO()
    fig.savefig(buffer, format=fmt, dpi=DPI, bbox_inches="tight")
    return buffer.getvalue()


def save(fig, path, outputs=None) -> None:
    """Render in memory first (a drawing error leaves no file), then write atomically.

    With ``outputs`` (an io.report.OutputSet that holds ``path``) the bytes go
    to its temporary, renamed with the run's other outputs on commit.
    """
    data = render(fig, path)
    if outputs is None:
        atomic_write(path, lambda f: f.write(data))
    else:
        outputs.write(path, lambda temporary: _write_bytes(temporary, data))


def _write_bytes(path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


def _colour(classes: ClassInfo, c: int) -> str:
    if classes.stuff is None:
        return OTHER_COLOUR
    return STUFF_COLOUR if classes.stuff[c] else THING_COLOUR


def class_order(iou: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(classes with a value, best first; classes without one, by id)."""
    valued = np.flatnonzero(~np.isnan(iou))
    return valued[np.argsort(-iou[valued], kind="stable")], np.flatnonzero(np.isnan(iou))


# Per-class markers drawn over the IoU bars: (metric, its mean, label, marker, colour).
_BOUNDARY_MARKERS = (("boundary_iou", "mboundary_iou", "Boundary IoU", "D", "#d62728"),
                     ("boundary_f1", "mboundary_f1", "BF score", "o", "#1a1a1a"))


def boundary_markers(metrics) -> list:
    """(label, (K,) values, marker, colour) of the boundary metrics ``metrics`` carries (none without them)."""
    out = []
    for name, mean_name, label, marker, colour in _BOUNDARY_MARKERS:
        values = getattr(metrics, name, None)
        if values is not None:
            mean = getattr(metrics, mean_name)
            shown = "nan" if mean is None or math.isnan(mean) else f"{100 * mean:.2f}%"
            out.append((f"{label} (mean {shown})", np.asarray(values, dtype=np.float64), marker, colour))
    return out


def per_class_axes(axes: list, iou: np.ndarray, mean: float, classes: ClassInfo, *, gt_pixels=None,
                   mean_label: str = "mIoU", markers=()) -> list:
    """Horizontal IoU bars of every class over ``axes`` (columns), sorted; absent classes listed last.

    ``markers``: (label, (K,) values, marker, colour) drawn over each class's
    bar (the boundary metrics).  Returns the legend's handles (the mean line,
    the markers, stuff/thing, the absent classes).
    """
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    order, absent = class_order(iou)
    rows = list(order) + list(absent)
    per_column = -(-len(rows) // len(axes))
    for j, ax in enumerate(axes):
        chunk = rows[j * per_column:(j + 1) * per_column]
        y = np.arange(len(chunk))
        values = [0.0 if np.isnan(iou[c]) else 100 * iou[c] for c in chunk]
        ax.barh(y, values, color=[_colour(classes, c) for c in chunk], height=0.8)
        for _, marked, marker, colour in markers:
            at = [(100 * marked[c], yy) for yy, c in zip(y, chunk) if not np.isnan(marked[c])]
            if at:
                ax.plot(*zip(*at), linestyle="none", marker=marker, color=colour, markersize=3.2, zorder=3)
        for yy, c in zip(y, chunk):
            if np.isnan(iou[c]):
                ax.text(1, yy, "absent (no GT, not predicted)", va="center", fontsize=NAME_POINTS - 1,
                        color=ABSENT_COLOUR, style="italic")
            elif gt_pixels is not None and gt_pixels[c] == 0:
                ax.text(100 * iou[c] + 1, yy, "predicted, not in GT", va="center", fontsize=NAME_POINTS - 1,
                        color="#444444", style="italic")
            elif iou[c] == 0:
                ax.text(1, yy, "0: in GT, never right", va="center", fontsize=NAME_POINTS - 1, color="#444444",
                        style="italic")
        ax.set_yticks(y)
        ax.set_yticklabels([classes.names[c] for c in chunk], fontsize=NAME_POINTS)
        for label, c in zip(ax.get_yticklabels(), chunk):
            if np.isnan(iou[c]):
                label.set_color(ABSENT_COLOUR)
        ax.set_ylim(per_column - 0.5, -0.5)
        ax.set_xlim(0, 100)
        ax.set_xlabel("IoU, boundary metrics (%)" if markers else "IoU (%)", fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
        ax.grid(axis="x", alpha=0.3)
        if math.isfinite(mean):
            ax.axvline(100 * mean, color="black", linestyle="--", linewidth=1)
        ax.margins(y=0)
    handles = [Line2D([0], [0], color="black", linestyle="--", label=f"{mean_label} {100 * mean:.2f}%")]
    handles += [Line2D([0], [0], linestyle="none", marker=marker, color=colour, markersize=4, label=label)
                for label, _, marker, colour in markers]
    if classes.stuff is not None:
        handles += [Patch(color=STUFF_COLOUR, label="stuff"), Patch(color=THING_COLOUR, label="thing")]
    if len(absent):
        handles.append(Patch(color="white", label=f"{len(absent)} absent classes (no value) at the end"))
    return handles


def _columns(k: int) -> int:
    return 1 if k <= 40 else 2 if k <= 80 else 3


def confused_pairs(matrix: np.ndarray, count: int = 20) -> list[tuple[int, int, float, int]]:
    """(ground-truth class, predicted class, share of the ground-truth class's pixels, pixels), most pixels first.

    Only off-diagonal cells: the errors that cost the most pixels.  Among equal
    counts the larger share of its class first, then the lower class ids.
    """
    m = np.asarray(matrix, dtype=np.int64)
    gt = m.sum(axis=1)
    off = m.copy()
    np.fill_diagonal(off, 0)
    rows, cols = np.nonzero(off)
    if rows.size == 0:
        return []
    share = off[rows, cols] / gt[rows]
    order = np.lexsort((cols, rows, -share, -off[rows, cols]))[:count]
    return [(int(rows[i]), int(cols[i]), float(share[i]), int(off[rows[i], cols[i]])) for i in order]


def confused_axes(ax, matrix: np.ndarray, classes: ClassInfo, count: int = 20) -> None:
    pairs = confused_pairs(matrix, count)
    if not pairs:
        ax.text(0.5, 0.5, "no confusions: every evaluated pixel right", ha="center", va="center")
        ax.set_axis_off()
        return
    total = max(int(np.asarray(matrix).sum()), 1)
    y = np.arange(len(pairs))
    ax.barh(y, [100 * n / total for *_, n in pairs], color=[_colour(classes, g) for g, _, _, _ in pairs],
            height=0.75)
    ax.set_yticks(y)
    ax.set_yticklabels([f"{classes.names[g]}  \u2192  {classes.names[p]}" for g, p, _, _ in pairs],
                       fontsize=NAME_POINTS + 1)
    ax.set_ylim(len(pairs) - 0.5, -0.5)
    top = max(100 * n / total for *_, n in pairs)
    for yy, (g, _, s, n) in zip(y, pairs):
        ax.text(100 * n / total + top * 0.01, yy, f"{n:,} px: {100 * s:.1f}% of {classes.names[g]}", va="center",
                fontsize=7)
    ax.set_xlim(0, top * 1.35)
    ax.set_xlabel("pixels confused, % of all evaluated pixels", fontsize=8)
    ax.set_title(f"the {len(pairs)} most-confused pairs, by pixels (ground truth \u2192 predicted)", fontsize=10)
    ax.tick_params(axis="x", labelsize=7)
    ax.grid(axis="x", alpha=0.3)


def evaluation_figure(path, matrix: np.ndarray, metrics, classes: ClassInfo, *, title: str = "",
                      confusions: int = 20) -> None:
    """Per-class IoU of every class (sorted, named) above the most-confused pairs, in one figure."""
    plt = import_pyplot()
    iou = np.asarray(metrics.iou, dtype=np.float64)
    k = len(iou)
    cols = _columns(k)
    per_column = -(-k // cols)
    bar_height = per_column * ROW_INCHES + 1.0
    pair_height = min(confusions, max(len(confused_pairs(matrix, confusions)), 1)) * 0.22 + 1.2
    height = bar_height + pair_height + 1.2
    fig = plt.figure(figsize=(5.2 * cols, height))
    grid = fig.add_gridspec(2, cols, height_ratios=[bar_height, pair_height], hspace=0.2, wspace=0.45,
                            top=1 - 1.1 / height, bottom=0.5 / height)
    axes = [fig.add_subplot(grid[0, j]) for j in range(cols)]
    gt_pixels = np.asarray(matrix).sum(axis=1)
    markers = boundary_markers(metrics)
    handles = per_class_axes(axes, iou, float(metrics.miou), classes, gt_pixels=gt_pixels,
                             mean_label=f"mIoU ({metrics.convention})", markers=markers)
    # The legend above the bars, where it covers none of them.
    fig.legend(handles=handles, loc="upper center", ncol=len(handles), fontsize=8, frameon=False,
               bbox_to_anchor=(0.5, 1 - 0.35 / height))
    caption = "per-class IoU, best to worst (read down each column, left to right)"
    if markers:
        caption = "per-class IoU (bars) and boundary metrics (markers), by IoU best to worst"
    fig.text(0.5, 1 - 0.9 / height, caption, ha="center", fontsize=10)
    confused_axes(fig.add_subplot(grid[1, :]), matrix, classes, confusions)
    if title:
        fig.suptitle(title, fontsize=12, y=1 - 0.12 / height)
    try:
        save(fig, path)
    finally:
        plt.close(fig)


def comparison_figure(path, doc: dict, *, count: int = 30, outputs=None) -> None:
    """The classes whose IoU changed most between two runs, with their paired intervals."""
    plt = import_pyplot()
    rows = [c for c in doc["per_class"] if c["delta"] is not None][:count]
    rows.sort(key=lambda c: c["delta"])
    fig, ax = plt.subplots(figsize=(7.5, 0.24 * max(len(rows), 1) + 1.8))
    if rows:
        y = np.arange(len(rows))
        d = np.array([100 * c["delta"] for c in rows])
        lo = np.array([100 * (c["delta_ci"][0] if c["delta_ci"][0] is not None else c["delta"]) for c in rows])
        hi = np.array([100 * (c["delta_ci"][1] if c["delta_ci"][1] is not None else c["delta"]) for c in rows])
        colours = ["#2e7d32" if v > 0 else "#c62828" for v in d]
        ax.barh(y, d, color=colours, height=0.7, alpha=0.85)
        ax.errorbar(d, y, xerr=[d - lo, hi - d], fmt="none", ecolor="black", elinewidth=0.8, capsize=2)
        ax.set_yticks(y)
        ax.set_yticklabels([c["name"] for c in rows], fontsize=NAME_POINTS + 1)
        ax.axvline(0, color="black", linewidth=0.8)
        low, high = doc["delta_ci"]
        interval = f" [{100 * low:+.2f}, {100 * high:+.2f}]" if low is not None and high is not None else ""
        p = f", p = {doc['p_value']:.2g}" if doc.get("p_value") is not None else ""
        ax.axvline(100 * doc["delta"], color="#1f4e9c", linestyle="--", linewidth=1,
                   label=f"mIoU difference {100 * doc['delta']:+.2f}{interval}{p}")
        # Above the bars (between them and the title), where it covers none of them.
        ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), fontsize=7, frameon=False)
        ax.set_ylim(-0.5, len(rows) - 0.5)
    ax.set_xlabel(f"IoU of {doc['name_b']} minus IoU of {doc['name_a']} (percentage points; "
                  f"bars: {100 * doc['confidence']:g}% paired bootstrap intervals)", fontsize=8)
    ax.set_title(f"{doc['name_b']} vs {doc['name_a']}: the {len(rows)} classes that changed most\n"
                 f"({doc['images']} images, {doc['convention']} convention)", fontsize=10, pad=18)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    try:
        save(fig, path, outputs)
    finally:
        plt.close(fig)


# -- show: label maps side by side with a title and a class legend (Pillow only) --------------------

def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)  # a scalable font (Pillow >= 10.1 with FreeType)
    except TypeError:  # older Pillow: the fixed bitmap font
        return ImageFont.load_default()


def _text_width(draw, text: str, font) -> int:
    left, _, right, _ = draw.textbbox((0, 0), text, font=font)
    return int(right - left)


def labelled_panels(panels: list[tuple[str, np.ndarray]], *, title: str, legend: list[tuple[str, tuple]],
                    gap: int = 6, max_legend: int = 40) -> np.ndarray:
    """Equal-height RGB panels in a row under a header: the title, each panel's name, a class legend.

    The panels keep their pixels one to one (no resampling) and sit at the
    bottom of the picture, ``gap`` pixels apart; the header's text is sized
    to the panels (at least 12 px) and the legend (colour swatch and class
    name, most pixels first) wraps within the picture's width, and so does
    a title wider than the picture (at spaces).  When a panel is narrower
    than its name, the names are given as one wrapped caption, left to right.
    """
    from PIL import Image, ImageDraw

    h = panels[0][1].shape[0]
    size = max(12, min(28, h // 22))
    big, small = _font(size + 4), _font(size)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    line = size + 8
    width = sum(p.shape[1] for _, p in panels) + gap * (len(panels) - 1)
    title_lines = _wrap(probe, title, big, width - 8)
    names_fit = all(_text_width(probe, name, small) + 6 <= p.shape[1] for name, p in panels)
    caption = [] if names_fit else _wrap(probe, "left to right: " + "; ".join(n for n, _ in panels), small, width - 8)
    # Lay the legend out in rows that fit the width.
    entries = legend[:max_legend]
    if len(legend) > max_legend:
        entries = entries + [(f"... and {len(legend) - max_legend} more classes", None)]
    rows, x = [[]], 0
    for name, colour in entries:
        w = size + 6 + _text_width(probe, name, small) + 2 * size
        if rows[-1] and x + w > width:
            rows.append([])
            x = 0
        rows[-1].append((name, colour, x))
        x += w
    title_height = len(title_lines) * (size + 10)
    header = 6 + title_height + len(rows) * line + max(1, len(caption)) * line + 6
    canvas = Image.new("RGB", (width, header + h), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for i, text in enumerate(title_lines):
        draw.text((4, 4 + i * (size + 10)), text, fill=(0, 0, 0), font=big)
    y = 6 + title_height
    for r in rows:
        for name, colour, x0 in r:
            if colour is not None:
                draw.rectangle([x0 + 4, y + 2, x0 + 4 + size, y + 2 + size], fill=tuple(int(c) for c in colour),
                               outline=(0, 0, 0))
            draw.text((x0 + size + 10, y), name, fill=(0, 0, 0), font=small)
        y += line
    for text in caption:
        draw.text((4, y), text, fill=(0, 0, 0), font=small)
        y += line
    x = 0
    for name, rgb in panels:
        if names_fit:
            draw.text((x + 3, header - line), name, fill=(0, 0, 0), font=small)
        canvas.paste(Image.fromarray(np.ascontiguousarray(rgb)), (x, header))
        x += rgb.shape[1] + gap
    return np.asarray(canvas)


def _wrap(draw, text: str, font, width: int) -> list[str]:
    """``text`` in lines no wider than ``width`` pixels, broken at spaces, and inside a word wider than that."""
    lines: list[str] = []
    for word in text.split(" "):
        if lines and _text_width(draw, lines[-1] + " " + word, font) <= width:
            lines[-1] += " " + word
            continue
        lines.append("")
        for char in word:  # a word wider than the picture is cut where it reaches the edge
            if lines[-1] and _text_width(draw, lines[-1] + char, font) > width:
                lines.append("")
            lines[-1] += char
    return lines or [""]


def show_title(pred_name: str, gt_name: str, metrics) -> str:
    right = "nan" if math.isnan(metrics.aacc) else f"{100 * metrics.aacc:.1f}%"
    miou = "nan" if math.isnan(metrics.miou) else f"{100 * metrics.miou:.1f}%"
    return f"{pred_name} against {gt_name}: {right} of evaluated pixels right, mIoU of this image {miou}"


def show_legend(pred_ids: np.ndarray, gt_ids: np.ndarray, evaluated: np.ndarray, names, palette) -> list:
    """(name, colour) of every class drawn: in the evaluated ground truth or anywhere in the prediction, most pixels first."""
    k = len(palette)
    counts = np.zeros(k, dtype=np.int64)
    for ids in (gt_ids[evaluated], pred_ids.reshape(-1)):
        ids = ids[(ids >= 0) & (ids < k)]
        counts += np.bincount(ids, minlength=k)
    present = np.flatnonzero(counts)
    order = present[np.argsort(-counts[present], kind="stable")]
    entries = [(str(names[c]), tuple(palette[c])) for c in order]
    if not np.all(evaluated):
        entries.append(("not evaluated (ground truth ignored)", (0, 0, 0)))
    return entries
