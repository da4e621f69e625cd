"""The CLI table explains its own numbers (issue 13, item 8): pixel columns and notes.

Each class row shows its ground-truth and predicted pixels, so a "0.00" IoU
(predicted, never in the ground truth) and a "nan" accuracy explain
themselves; the notes say why mDice and mFscore differ under mmseg and that
mRecall is mAcc.  Expected counts come from ``reference.confusion_matrix``.
"""
from __future__ import annotations

import re

import numpy as np
import pytest

from ade20k_metrics import reference
from ade20k_metrics.cli import main
from labelgen import sample_with_predictions
from labelgen import write_label_pngs as _write

pytest.importorskip("PIL.Image")  # the maps are written as PNG (and JPEG) files



@pytest.fixture(scope="module")
def sample():
    gts, preds = sample_with_predictions()
    matrix = sum(reference.confusion_matrix(preds[n].astype(np.int64) - 1, gts[n], 150, reduce_zero_label=True)
                 for n in gts)
    return gts, preds, matrix


def _table_rows(out: str) -> dict[int, list[str]]:
    rows = {}
    for line in out.splitlines():
        m = re.match(r"\s*(\d+)\s+(.+?)\s+(\S+)\s+(\S+)\s+([\d,]+)\s+([\d,]+)\s+(stuff|thing|-)$", line)
        if m:
            rows[int(m.group(1))] = [m.group(3), m.group(4), m.group(5).replace(",", ""), m.group(6).replace(",", "")]
    return rows


def test_table_has_pixel_columns_and_notes(tmp_path, capsys, sample):
    gts, preds, matrix = sample
    status = main(["evaluate", str(_write(tmp_path / "p", preds)), str(_write(tmp_path / "g", gts)),
                   "--markdown", str(tmp_path / "r.md")])
    out = capsys.readouterr().out
    assert status == 0
    header = out.splitlines()[0].split()
    assert header[:4] == ["id", "class", "IoU", "Acc"] and "gt" in header and "pred" in header
    rows = _table_rows(out)
    assert len(rows) == 150
    gt_px, pred_px, tp = matrix.sum(1), matrix.sum(0), np.diag(matrix)
    for c, (iou, acc, g, p) in rows.items():
        assert (int(g), int(p)) == (gt_px[c], pred_px[c])
    predicted_only = [c for c in range(150) if gt_px[c] == 0 and pred_px[c] > 0]
    assert predicted_only  # simulate_prediction adds a spurious blob
    for c in predicted_only:  # "0.00" and "nan" explained by the columns beside them
        assert rows[c][:2] == ["0.00", "nan"] and rows[c][2] == "0"
    # F-score NaN (tp = 0, so precision and recall are 0/0 or 0) and Dice 0: classes present with tp = 0.
    dropped = int(np.sum((tp == 0) & (gt_px + pred_px > 0)))
    assert f"note: mDice and mFscore differ although each class's Dice equals its F-score: {dropped} class(es)" in out
    assert "note: mRecall is mAcc" in out
    md = (tmp_path / "r.md").read_text()
    assert "| id | class | IoU | Acc | gt pixels | pred pixels | kind |" in md
    c = predicted_only[0]
    assert re.search(rf"\| {c} \| [^|]+ \| 0\.00 \| nan \| 0 \| {pred_px[c]} \|", md)
    assert f"- mDice and mFscore differ" in md


def test_perfect_predictions_have_no_dice_note(tmp_path, capsys, sample):
    gts, _, _ = sample
    perfect = {n: np.where(g == 0, 1, g) for n, g in gts.items()}  # "other" pixels are not evaluated
    status = main(["evaluate", str(_write(tmp_path / "p", perfect)), str(_write(tmp_path / "g", gts))])
    out = capsys.readouterr().out
    assert status == 0
    assert "mDice and mFscore differ" not in out and "note: mRecall is mAcc" in out
