"""LaTeX tables for papers: an evaluation's summary and per-class IoU, and a comparison of two runs.

Plain ``tabular`` with booktabs rules (``\\usepackage{booktabs}``), numbers in
percent with two decimals, classes with no value under the convention as
"--".  Each table comes in a ``table`` float with a caption stating the
protocol (images, convention, interval method) and a label to ``\\ref``.
"""
from __future__ import annotations

import math
import re

_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
            "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
_SPECIAL_RE = re.compile("|".join(re.escape(c) for c in _SPECIAL))


def escape(text) -> str:
    """``text`` with LaTeX's special characters escaped (control characters dropped)."""
    text = "".join(ch for ch in str(text) if ch.isprintable())
    return _SPECIAL_RE.sub(lambda m: _SPECIAL[m.group()], text)


def pct(x, signed: bool = False) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "--"
    return f"{100 * x:+.2f}" if signed else f"{100 * x:.2f}"


def interval(low, high, signed: bool = False) -> str:
    if low is None or high is None or math.isnan(low) or math.isnan(high):
        return ""
    return f"[{pct(low, signed)}, {pct(high, signed)}]"


def p_value(p: float) -> str:
    if p is None or math.isnan(p):
        return "--"
    return f"{p:.2g}" if p >= 1e-3 else f"{p:.1e}".replace("e-0", "e-").replace("e", r"\times 10^{") + "}"


def _float(caption: str, label: str, body: list[str], spec: str) -> str:
    return "\n".join([r"\begin{table}[t]", r"\centering", r"\small", rf"\begin{{tabular}}{{{spec}}}", r"\toprule",
                      *body, r"\bottomrule", r"\end{tabular}", rf"\caption{{{caption}}}", rf"\label{{{label}}}",
                      r"\end{table}", ""])


def evaluation_tables(name: str, scalars: dict, rows: list[dict], *, images: int, convention: str,
                      ci: dict | None = None, label: str = "tab:eval", columns: int = 3) -> str:
    """Summary (mIoU with its interval if given, mAcc, aAcc) and per-class IoU in ``columns`` column groups."""
    head = ["method", "mIoU", "mAcc", "aAcc"]
    miou = pct(scalars.get("miou"))
    if ci is not None:
        miou += " " + interval(ci["low"], ci["high"])
    body = [" & ".join(head) + r" \\", r"\midrule",
            " & ".join([escape(name), miou, pct(scalars.get("macc")), pct(scalars.get("aacc"))]) + r" \\"]
    protocol = (f"{images} images, {escape(convention)} convention, percent")
    if ci is not None:
        protocol += (f"; mIoU with its {100 * ci['confidence']:g}\\% percentile bootstrap interval over images "
                     f"({ci['resamples']} resamples)")
    summary = _float(f"Semantic segmentation results ({protocol}).", label, body, "lrrr")

    per_class = [r for r in rows]
    n = len(per_class)
    per_group = -(-n // columns) if n else 0
    groups = [per_class[g * per_group:(g + 1) * per_group] for g in range(columns)]
    lines = [" & ".join(["class", "IoU"] * columns) + r" \\", r"\midrule"]
    for i in range(per_group):
        cells = []
        for group in groups:
            if i < len(group):
                cells += [escape(group[i]["name"]), pct(group[i]["iou"])]
            else:
                cells += ["", ""]
        lines.append(" & ".join(cells) + r" \\")
    spec = "@{}" + "lr" * columns + "@{}"
    classes = _float(f"Per-class IoU of {escape(name)} ({images} images, {escape(convention)} convention, percent; "
                     "-- where the class is neither in the ground truth nor predicted).", label + "-classes", lines,
                     spec)
    return summary + "\n" + classes


def comparison_table(doc: dict, *, label: str = "tab:compare", top: int = 10) -> str:
    """mIoU of A and B, B - A with its paired interval and p-value, and the classes that changed most."""
    conf = f"{100 * doc['confidence']:g}\\%"
    rows = [r"method & mIoU & " + conf + r" CI \\", r"\midrule",
            f"{escape(doc['name_a'])} & {pct(doc['miou_a'])} & {interval(*doc['miou_a_ci'])} \\\\",
            f"{escape(doc['name_b'])} & {pct(doc['miou_b'])} & {interval(*doc['miou_b_ci'])} \\\\",
            r"\midrule",
            f"$\\Delta$ (B $-$ A) & {pct(doc['delta'], True)} & {interval(*doc['delta_ci'], signed=True)} \\\\",
            rf"\multicolumn{{3}}{{l}}{{two-sided paired $p = {p_value(doc['p_value'])}$}} \\"]
    caption = (f"{escape(doc['name_b'])} against {escape(doc['name_a'])} on the same {doc['images']} images "
               f"({escape(doc['convention'])} convention, percent). Intervals: paired percentile bootstrap over "
               f"images ({doc['n_resamples']} resamples); $p$: paired randomization test over images "
               f"({doc['n_permutations']} permutations).")
    out = _float(caption, label, rows, "lrr")
    changed = [c for c in doc["per_class"] if c["delta"] is not None][:top]
    if changed:
        lines = [r"class & IoU A & IoU B & $\Delta$ & " + conf + r" CI \\", r"\midrule"]
        for c in changed:
            lines.append(f"{escape(c['name'])} & {pct(c['iou_a'])} & {pct(c['iou_b'])} & {pct(c['delta'], True)} & "
                         f"{interval(*c['delta_ci'], signed=True)} \\\\")
        out += "\n" + _float(f"The {len(changed)} classes whose IoU changed most (B $-$ A, percent; paired bootstrap "
                             "intervals).", label + "-classes", lines, "lrrrr")
    return out
