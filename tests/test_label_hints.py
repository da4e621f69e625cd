"""Hints that send users the right way (issue 13, item 7), on the package's real ADE20K annotations.

Swapped folders ask whether they are swapped (not only "--pred-zero-based"); a
GT_DIR at the dataset root names the folder under it; JPEG predictions say
what they are and why they cannot be scored.
"""
from __future__ import annotations

import os

import numpy as np
import pytest

from ade20k_metrics.cli import main
from labelgen import sample_with_predictions
from labelgen import write_label_pngs as _write

pytest.importorskip("PIL.Image")  # the maps are written as PNG (and JPEG) files



@pytest.fixture(scope="module")
def sample():
    gts, preds = sample_with_predictions()
    return gts, preds


def _run(capsys, *argv):
    status = main(["evaluate", *map(str, argv)])
    return status, capsys.readouterr().err


def test_swapped_folders_ask_whether_they_are_swapped(tmp_path, capsys, sample):
    gts, preds = sample
    status, err = _run(capsys, _write(tmp_path / "annotations", gts), _write(tmp_path / "predictions", preds))
    assert status == 1
    assert "are PRED_DIR and GT_DIR swapped?" in err
    assert err.index("swapped?") < err.index("--pred-zero-based")  # the question comes first


def test_zero_based_predictions_still_get_the_flag_without_the_question(tmp_path, capsys, sample):
    gts, preds = sample
    zero_based = {name: p.astype(np.int64) - 1 for name, p in preds.items()}
    status, err = _run(capsys, _write(tmp_path / "p", zero_based), _write(tmp_path / "g", gts))
    assert status == 1
    assert "pass --pred-zero-based" in err and "swapped" not in err


def test_gt_dir_at_the_dataset_root_names_the_validation_folder(tmp_path, capsys, sample):
    gts, preds = sample
    root = tmp_path / "ADEChallengeData2016"
    _write(root / "annotations" / "validation", gts)
    _write(root / "annotations" / "training", {"ADE_train_00000001": next(iter(gts.values()))})
    _write(root / "images" / "validation", {name: gt for name, gt in gts.items()}, suffix=".jpg")
    pred_dir = _write(tmp_path / "p", preds)
    right = os.path.join(str(root), "annotations", "validation")
    status, err = _run(capsys, pred_dir, root)
    assert status == 1
    assert f"pass {right} as GT_DIR" in err
    assert "pass --allow-missing" not in err  # not suggested: it would score nothing
    status, err = _run(capsys, pred_dir, root, "--allow-missing")
    assert status == 1 and "no PNG pairs found" in err and f"pass {right} as GT_DIR" in err
    # Given that folder, the run works.
    status, _ = _run(capsys, pred_dir, right)
    assert status == 0


def test_pred_dir_one_folder_too_high_names_its_subfolder(tmp_path, capsys, sample):
    gts, preds = sample
    _write(tmp_path / "run" / "pred", preds)
    status, err = _run(capsys, tmp_path / "run", _write(tmp_path / "g", gts))
    assert status == 1 and f"pass {os.path.join(str(tmp_path / 'run'), 'pred')} as PRED_DIR" in err


def test_jpeg_predictions_say_why_they_cannot_be_scored(tmp_path, capsys, sample):
    gts, preds = sample
    status, err = _run(capsys, _write(tmp_path / "p", preds, suffix=".jpg"), _write(tmp_path / "g", gts))
    assert status == 1
    assert "3 prediction(s) are JPEG files" in err and "lossy" in err and "save predictions as PNG" in err


def test_an_ordinary_missing_file_keeps_the_allow_missing_advice(tmp_path, capsys, sample):
    gts, preds = sample
    some = dict(list(preds.items())[:2])
    status, err = _run(capsys, _write(tmp_path / "p", some), _write(tmp_path / "g", gts))
    assert status == 1
    assert "pass --allow-missing" in err and "JPEG" not in err and "as GT_DIR" not in err
