"""``Metrics`` as a pandas DataFrame and as HTML for notebooks.

pandas is an optional extra (``pip install 'ade20k-metrics[pandas]'``),
imported only when ``to_pandas`` is called; the HTML needs nothing.
"""
from __future__ import annotations

import html
import math

import numpy as np

from ..datasets.ade20k import class_names


def _names(metrics, names) -> list[str]:
    k = metrics.num_classes
    if names is None:
        names = class_names() if k == 150 else [str(i) for i in range(k)]
    names = [str(n) for n in names]
    if len(names) != k:
        raise ValueError(f"names has {len(names)} entries for {k} classes")
    return names


def _pixels(metrics):
    m = metrics.matrix
    if m is None:
        return None, None
    return np.asarray(m).sum(axis=1), np.asarray(m).sum(axis=0)


def metrics_frame(metrics, names=None):
    """One row per class (index: class id): name, iou, acc, precision, dice, fscore, gt_pixels, pred_pixels.

    Fractions, NaN where undefined under the convention.  ``frame.attrs``
    holds the convention, beta and every scalar (miou, aacc, ...).
    """
    try:
        import pandas as pd
    except ImportError:
        raise ImportError("Metrics.to_pandas needs pandas: pip install 'ade20k-metrics[pandas]'") from None
    columns = {"name": _names(metrics, names)}
    for field in metrics.PER_CLASS:
        columns[field] = np.asarray(getattr(metrics, field), dtype=np.float64)
    gt, pred = _pixels(metrics)
    if gt is not None:
        columns["gt_pixels"], columns["pred_pixels"] = gt, pred
    frame = pd.DataFrame(columns, index=pd.RangeIndex(metrics.num_classes, name="class"))
    frame.attrs.update({"convention": metrics.convention, "beta": metrics.beta,
                        **{name: float(getattr(metrics, name)) for name in metrics.SCALARS}})
    return frame


def _cell(x) -> str:
    x = float(x)
    return "&ndash;" if math.isnan(x) else f"{100 * x:.2f}"


def metrics_html(metrics, names=None, *, max_rows: int = 200) -> str:
    """A summary table of the means and a collapsible per-class table (percent)."""
    labels = {"miou": "mIoU", "macc": "mAcc", "aacc": "aAcc", "mprecision": "mPrecision", "mrecall": "mRecall",
              "mdice": "mDice", "mfscore": "mFscore", "fwiou": "fwIoU", "score": "score"}
    head = "".join(f"<th>{labels.get(n, n)}</th>" for n in metrics.SCALARS)
    row = "".join(f"<td>{_cell(getattr(metrics, n))}</td>" for n in metrics.SCALARS)
    out = [f"<div><b>Metrics</b> ({html.escape(metrics.convention)} convention, {metrics.num_classes} classes, "
           f"percent)<table><tr>{head}</tr><tr>{row}</tr></table>"]
    gt, pred = _pixels(metrics)
    cols = "".join(f"<th>{c}</th>" for c in ("id", "class", "IoU", "Acc", "Precision", "Dice", "F-score"))
    if gt is not None:
        cols += "<th>GT pixels</th><th>pred pixels</th>"
    lines = []
    for i, name in enumerate(_names(metrics, names)[:max_rows]):
        cells = [str(i), html.escape(name)] + [_cell(getattr(metrics, f)[i]) for f in metrics.PER_CLASS]
        if gt is not None:
            cells += [f"{int(gt[i]):,}", f"{int(pred[i]):,}"]
        lines.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    more = (f"<p>... {metrics.num_classes - max_rows} more classes</p>" if metrics.num_classes > max_rows else "")
    out.append(f"<details><summary>per class</summary><table><tr>{cols}</tr>{''.join(lines)}</table>{more}"
               "</details></div>")
    return "".join(out)
