"""Published ADE20K (SceneParsing-150, val) results, and where a new result would rank among them.

The table ships as package data (data/leaderboard.csv: model, organisation,
mIoU in percent, architecture type, parameters in millions where known, year).
"""
from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from importlib import resources


@dataclass(frozen=True)
class Entry:
    model: str
    organisation: str
    miou: float                    # percent, as published
    kind: str                      # "CNN", "Transformer", "Hybrid", ...
    params_millions: float | None  # None where not published
    year: int | None
    is_new: bool = False           # the result being ranked, not a published one


def published() -> list[Entry]:
    """The shipped table, best mIoU first."""
    with resources.files("ade20k_metrics.datasets").joinpath("data", "ade20k", "leaderboard.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    entries = [Entry(model=r["model"], organisation=r["organisation"], miou=float(r["miou"]), kind=r["type"],
                     params_millions=float(r["params_millions"]) if r["params_millions"].strip() else None,
                     year=int(r["year"]) if r["year"].strip() else None) for r in rows]
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
    out.write(f"{'rank':>4}  {'model':<{width}}  {'mIoU':>5}  {'params':>7}  {'type':<11}  year\n")
    for rank, e in enumerate(entries, start=1):
        params = "?" if e.params_millions is None else f"{e.params_millions:g}M"
        marker = "  <==" if e.is_new else ""
        year = "" if e.year is None else str(e.year)
        out.write(f"{rank:>4}  {e.model:<{width}}  {e.miou:5.1f}  {params:>7}  {e.kind:<11}  {year}{marker}\n")
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


def plot(path, entries: list[Entry], *, title: str = "ADE20K val: mIoU against model size") -> None:
    """mIoU against parameter count (log scale) with the efficiency frontier; a new result is starred."""
    from ..io.report import import_pyplot, save_figure

    plt = import_pyplot()
    colours = {"CNN": "#3b75af", "Transformer": "#d08c2f", "Hybrid": "#519e3e"}
    fig, ax = plt.subplots(figsize=(9, 6))
    known = [e for e in entries if e.params_millions is not None and not e.is_new]
    for kind in sorted({e.kind for e in known}):
        group = [e for e in known if e.kind == kind]
        ax.scatter([e.params_millions for e in group], [e.miou for e in group], s=30,
                   color=colours.get(kind, "#777777"), label=kind, zorder=3)
        for e in group:
            ax.annotate(e.model, (e.params_millions, e.miou), fontsize=7, xytext=(4, 2),
                        textcoords="offset points")
    frontier = pareto_frontier([e for e in entries if not e.is_new])
    if frontier:
        # The frontier holds from each model up to the next larger one that beats it, and on to the right edge.
        right = max(e.params_millions for e in entries if e.params_millions is not None) * 1.5
        xs = [e.params_millions for e in frontier] + [right]
        ys = [e.miou for e in frontier] + [frontier[-1].miou]
        ax.step(xs, ys, where="post", color="black", linewidth=1, linestyle="--",
                label="efficiency frontier (published)", zorder=2)
    for e in entries:
        if e.is_new and e.params_millions is not None:
            ax.scatter([e.params_millions], [e.miou], marker="*", s=260, color="#c0392b", edgecolor="black",
                       label=e.model, zorder=4)
        elif e.is_new:
            ax.axhline(e.miou, color="#c0392b", linewidth=1, label=f"{e.model} (size unknown)")
    ax.set_xscale("log")
    ax.set_xlabel("parameters (millions, log scale)")
    ax.set_ylabel("mIoU (%)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    try:
        save_figure(fig, path)
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


__all__ = ["Entry", "format_table", "pareto_frontier", "plot", "published", "rank_of", "verdict", "with_result"]
