"""Published ADE20K (SceneParsing-150, val) results, and where a new result would rank among them.

The table ships as package data (datasets/data/ade20k/leaderboard.csv: model,
organisation, mIoU in percent, architecture type, parameters in millions
where known, year, and for each row where its figure comes from: ``eval``
(ss single-scale, ms multi-scale testing, unknown), ``source`` (the paper,
with its arXiv id), ``source_table`` (the table of the paper), ``status``
(confirmed: the figure was read in the source; identified: the source is
known, its table not re-read; doubtful: no source found for the figure) and
a ``note``.  The rows were collected from the CodeSOTA ADE20K tracker.

A run is ranked only when it is comparable with the table: ADE20K-150 on the
full validation set (2,000 images); ``protocol_problems`` says why not.
"""
from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from importlib import resources

import numpy as np


@dataclass(frozen=True)
class Entry:
    model: str
    organisation: str
    miou: float                    # percent, as published
    kind: str                      # "CNN", "Transformer", "Hybrid", ...
    params_millions: float | None  # None where not published
    year: int | None
    is_new: bool = False           # the result being ranked, not a published one
    eval: str = ""                 # "ss", "ms" or "unknown" (published rows)
    source: str = ""               # the paper the figure was taken from
    source_table: str = ""
    status: str = ""               # confirmed / identified / doubtful
    note: str = ""
    checked: str = ""              # what the figure was checked against (or "not confirmed: ...")


ADE20K_CLASSES = 150
ADE20K_VAL_IMAGES = 2000


def protocol_problems(num_classes: int, images: int) -> list[str]:
    """Why a run cannot be ranked against the published table (empty: it can)."""
    problems = []
    if num_classes != ADE20K_CLASSES:
        problems.append(f"it has {num_classes} classes, the table is ADE20K-150 ({ADE20K_CLASSES} classes)")
    if images != ADE20K_VAL_IMAGES:
        problems.append(f"it scored {images} images, the table's figures are on the full validation set "
                        f"({ADE20K_VAL_IMAGES:,} images)")
    return problems


def published() -> list[Entry]:
    """The shipped table, best mIoU first."""
    with resources.files("ade20k_metrics.datasets").joinpath("data", "ade20k", "leaderboard.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    entries = [Entry(model=r["model"], organisation=r["organisation"], miou=float(r["miou"]), kind=r["type"],
                     params_millions=float(r["params_millions"]) if r["params_millions"].strip() else None,
                     year=int(r["year"]) if r["year"].strip() else None, eval=r["eval"], source=r["source"],
                     source_table=r["source_table"], status=r["status"], note=r["note"],
                     checked=r.get("checked") or "") for r in rows]
    return sorted(entries, key=lambda e: -e.miou)


def with_result(entries: list[Entry], miou: float | None, params_millions: float | None = None,
                name: str = "this result") -> list[Entry]:
    """``entries`` with a new result (mIoU in percent) inserted where it ranks; ties rank after published ones."""
    if miou is None:
        return list(entries)
    new = Entry(model=name, organisation="", miou=float(miou), kind="", params_millions=params_millions,
                year=None, is_new=True)
    at = next((i for i, e in enumerate(entries) if e.miou < new.miou), len(entries))
    return [*entries[:at], new, *entries[at:]]


def format_table(entries: list[Entry]) -> str:
    out = io.StringIO()
    width = max(len("model"), *(len(e.model) for e in entries))
    out.write(f"{'rank':>4}  {'model':<{width}}  {'mIoU':>5}  {'test':<4}  {'params':>7}  {'type':<11}  year  source\n")
    for rank, e in enumerate(entries, start=1):
        params = "?" if e.params_millions is None else f"{e.params_millions:g}M"
        marker = "  <==" if e.is_new else ""
        year = "" if e.year is None else str(e.year)
        test = {"ss": "ss", "ms": "ms"}.get(e.eval, "?") if not e.is_new else ""
        out.write(f"{rank:>4}  {e.model:<{width}}  {e.miou:5.1f}  {test:<4}  {params:>7}  {e.kind:<11}  {year:<4}  "
                  f"{short_source(e)}{marker}\n")
    out.write("test: ss single-scale, ms multi-scale testing, ? not stated; source: arXiv id of the paper the figure "
              "comes from (doubtful: no source found); 'leaderboard --sources' lists each in full\n")
    return out.getvalue()


def short_source(e: Entry) -> str:
    if e.is_new:
        return ""
    import re

    found = re.findall(r"arXiv:(\d{4}\.\d{4,5})", e.source)
    ident = found[0] if found else "?"
    return ident + (" (doubtful)" if e.status == "doubtful" else "")


def format_sources(entries: list[Entry]) -> str:
    """Every published row with its source, table, evaluation, status and note."""
    out = io.StringIO()
    for e in entries:
        if e.is_new:
            continue
        out.write(f"{e.model} ({e.miou:.1f} mIoU, {e.eval or '?'}): {e.source}")
        if e.source_table:
            out.write(f"; {e.source_table}")
        out.write(f" [{e.status}]")
        if e.note:
            out.write(f"; {e.note}")
        if e.checked:
            out.write(f"\n    checked: {e.checked}")
        out.write("\n")
    return out.getvalue()


def pareto_frontier(entries: list[Entry]) -> list[Entry]:
    """Entries no other entry beats on both counts (fewer-or-equal parameters and higher-or-equal mIoU,
    one of them strictly), by increasing parameter count.  Entries without a parameter count are left out."""
    known = sorted((e for e in entries if e.params_millions is not None),
                   key=lambda e: (e.params_millions, -e.miou))
    frontier: list[Entry] = []
    best = -math.inf
    for e in known:
        if e.miou > best:
            frontier.append(e)
            best = e.miou
    return frontier


def place_labels(ax, points: list[tuple[float, float]], texts: list[str], *, fontsize: float = 7,
                 radii: list[float] | None = None, lines: list | None = None) -> list:
    """Annotate each point with its text where no label overlaps another label or a point.

    Greedy, in display coordinates: each label tries positions around its
    point at growing distances and takes the first whose box is clear of the
    labels already placed and of every marker; a label moved away from its
    point gets a thin leader line.  ``radii``: each marker's radius in points
    (default 4); ``lines``: polylines [(x, y), ...] in data coordinates that
    labels must not cross either.  Returns the annotations.
    """
    fig = ax.figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    to_px = ax.transData.transform
    pts = [to_px(p) for p in points]
    px_per_point = fig.dpi / 72.0
    sizes = [(4.0 if radii is None else radii[i]) * px_per_point for i in range(len(pts))]
    markers = [(x - rr, y - rr, x + rr, y + rr) for (x, y), rr in zip(pts, sizes)]
    for line in lines or []:  # a polyline as a row of small boxes, one every 3 pixels
        xy = [to_px(p) for p in line]
        for (x0, y0), (x1, y1) in zip(xy, xy[1:]):
            n = max(1, int(np.hypot(x1 - x0, y1 - y0) / 3))
            for t in np.linspace(0, 1, n + 1):
                x, y = x0 + t * (x1 - x0), y0 + t * (y1 - y0)
                markers.append((x - 1.5, y - 1.5, x + 1.5, y + 1.5))
    placed: list[tuple[float, float, float, float]] = []
    frame = ax.get_window_extent(renderer)
    out = []

    def clear(box):
        x0, y0, x1, y1 = box
        if x0 < frame.x0 or x1 > frame.x1 or y0 < frame.y0 or y1 > frame.y1:
            return False
        return all(x1 <= a or x0 >= c or y1 <= b or y0 >= d for a, b, c, d in placed + markers)

    order = sorted(range(len(points)), key=lambda i: -points[i][1])
    for i in order:
        probe = ax.annotate(texts[i], points[i], fontsize=fontsize)
        ext = probe.get_window_extent(renderer)
        probe.remove()
        w, h = ext.width, ext.height
        x, y = pts[i]
        r = sizes[i]
        chosen = None
        for step in range(0, 14):
            d = r + 2 + step * 0.8 * h
            for dx, dy in ((d, -h / 2), (-d - w, -h / 2), (-w / 2, d), (-w / 2, -d - h), (d, d), (d, -d - h),
                           (-d - w, d), (-d - w, -d - h)):
                box = (x + dx, y + dy, x + dx + w, y + dy + h)
                if clear(box):
                    chosen = (dx, dy, box, step)
                    break
            if chosen:
                break
        if chosen is None:  # nowhere clear: to the right, as before
            chosen = (r + 2, -h / 2, (x + r + 2, y - h / 2, x + r + 2 + w, y + h / 2), 0)
        dx, dy, box, step = chosen
        placed.append(box)
        dpi_scale = 72.0 / fig.dpi  # offset points from pixels
        arrow = dict(arrowstyle="-", color="#888888", lw=0.5, shrinkA=0, shrinkB=3) if step > 1 else None
        out.append(ax.annotate(texts[i], points[i], xytext=(dx * dpi_scale, dy * dpi_scale),
                               textcoords="offset points", fontsize=fontsize, ha="left", va="bottom",
                               arrowprops=arrow))
    return out


def plot(path, entries: list[Entry], *, title: str = "ADE20K-150 val: published mIoU against model size",
         protocol: str = "") -> None:
    """mIoU against parameter count (log scale) with the efficiency frontier; a new result is starred.

    ``protocol`` says how the new result was evaluated; the published rows'
    test scale (ms = multi-scale testing) is in their labels.
    """
    from ..io.figures import save
    from ..io.report import import_pyplot

    plt = import_pyplot()
    colours = {"CNN": "#3b75af", "Transformer": "#d08c2f", "Hybrid": "#519e3e"}
    fig, ax = plt.subplots(figsize=(10, 7))
    known = [e for e in entries if e.params_millions is not None and not e.is_new]
    for kind in sorted({e.kind for e in known}):
        group = [e for e in known if e.kind == kind and e.status != "doubtful"]
        ax.scatter([e.params_millions for e in group], [e.miou for e in group], s=30,
                   color=colours.get(kind, "#777777"), label=kind, zorder=3)
    # Figures whose source was not found or gives another figure: hollow, so a reader does not take them as read.
    doubtful = [e for e in known if e.status == "doubtful"]
    if doubtful:
        ax.scatter([e.params_millions for e in doubtful], [e.miou for e in doubtful], s=30, facecolors="white",
                   edgecolors=[colours.get(e.kind, "#777777") for e in doubtful], linewidths=1.5,
                   label="source doubtful (hollow)", zorder=3)
    frontier = pareto_frontier([e for e in entries if not e.is_new])
    sized = [e.params_millions for e in entries if e.params_millions is not None]
    step_line = []
    if frontier:
        # The frontier holds from each model up to the next larger one that beats it, and on to the right edge.
        right = max(sized) * 1.5
        xs = [e.params_millions for e in frontier] + [right]
        ys = [e.miou for e in frontier] + [frontier[-1].miou]
        ax.step(xs, ys, where="post", color="black", linewidth=1, linestyle="--",
                label="efficiency frontier (published)", zorder=2)
        for j in range(len(xs) - 1):
            step_line += [(xs[j], ys[j]), (xs[j + 1], ys[j])]
        step_line.append((xs[-1], ys[-1]))
    new_points = []
    for e in entries:
        if e.is_new and e.params_millions is not None:
            ax.scatter([e.params_millions], [e.miou], marker="*", s=260, color="#c0392b", edgecolor="black",
                       label=e.model, zorder=4)
            new_points.append(e)
        elif e.is_new:
            ax.axhline(e.miou, color="#c0392b", linewidth=1, label=f"{e.model} ({e.miou:.1f}, size unknown)")
    ax.set_xscale("log")
    if sized:
        ax.set_xlim(min(sized) / 1.8, max(sized) * 1.8)
    mious = [e.miou for e in entries]
    ax.set_ylim(min(mious) - 2.5, max(mious) + 2.5)
    ax.set_xlabel("parameters (millions, log scale)")
    ax.set_ylabel("mIoU (%)")
    ax.set_title(title, fontsize=11)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    labelled = known + new_points
    place_labels(ax, [(e.params_millions, e.miou) for e in labelled],
                 [f"{e.model}" + (" (ms)" if e.eval == "ms" else "") + (f" {e.miou:.1f}" if e.is_new else "")
                  for e in labelled], radii=[10.0 if e.is_new else 4.0 for e in labelled],
                 lines=[step_line] if step_line else None)
    unsized = [e.model for e in entries if e.params_millions is None and not e.is_new]
    foot = ("Published figures as reported (ms: multi-scale testing; others single-scale or not stated), "
            "each row's source in leaderboard.csv; hollow: no source confirms the figure "
            "('ade20k-metrics leaderboard --sources').")
    if unsized:
        foot += f" Not drawn (size unpublished): {', '.join(unsized)}."
    if protocol:
        foot += f"\nThis run: {protocol}."
    fig.text(0.01, 0.005, foot, fontsize=7, ha="left", va="bottom", wrap=True)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    try:
        save(fig, path)
    finally:
        plt.close(fig)


def verdict(entries: list[Entry]) -> str:
    """One line on the new result: its rank, and where it stands against the efficiency frontier."""
    rank = rank_of(entries)
    if rank is None:
        return ""
    new = entries[rank - 1]
    line = f"{new.model}: rank {rank} of {len(entries)} at {new.miou:.1f} mIoU"
    if new.params_millions is None:
        return line + " (give --params to place it against the efficiency frontier)"
    better = [e for e in entries if not e.is_new and e.params_millions is not None
              and e.params_millions <= new.params_millions and e.miou > new.miou]
    if not better:
        return line + (f"; on the efficiency frontier: no published model of at most "
                       f"{new.params_millions:g}M parameters scores higher")
    best = max(better, key=lambda e: e.miou)
    return line + (f"; below the efficiency frontier: {best.model} ({best.params_millions:g}M parameters) "
                   f"scores {best.miou:.1f}")


def rank_of(entries: list[Entry]) -> int | None:
    """1-based rank of the new result in ``entries``, if there is one."""
    return next((i for i, e in enumerate(entries, start=1) if e.is_new), None)


__all__ = ["Entry", "format_sources", "format_table", "pareto_frontier", "place_labels", "plot", "protocol_problems",
           "published", "rank_of", "verdict", "with_result"]
