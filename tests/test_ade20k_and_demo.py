"""Bundled ADE20K data, the hand-checked basic metrics, and the demo command."""
from __future__ import annotations

import math

import numpy as np
import pytest

import ade20k_metrics as am
from ade20k_metrics import ade20k, reference
from ade20k_metrics.cli import main


def test_class_table():
    table = ade20k.classes()
    assert len(table.names) == 150
    assert table.names[0] == "wall" and table.names[149] == "flag"
    assert int(table.stuff.sum()) == 35
    assert table.palette.shape == (150, 3) and table.palette.dtype == np.uint8
    assert abs(table.pixel_ratio[table.stuff].sum() - 0.61) < 0.02


def test_sample_annotations_match_the_pngs():
    arrays = ade20k.sample_annotations()
    assert sorted(arrays) == ["ADE_val_00000001", "ADE_val_00000002", "ADE_val_00000003"]
    assert arrays["ADE_val_00000001"].shape == (512, 683)
    Image = pytest.importorskip("PIL.Image")
    from importlib import resources

    for name, arr in arrays.items():
        with resources.files("ade20k_metrics.datasets").joinpath("data", "ade20k", "sample", name + ".png").open("rb") as f:
            np.testing.assert_array_equal(np.array(Image.open(f)), arr)


def test_basic_metrics_by_hand():
    # rows = ground truth, columns = prediction
    m = np.array([[3, 1, 0],
                  [0, 2, 0],
                  [0, 0, 0]])
    out = am.compute_metrics(m)
    # class 0: tp 3, gt 4, pred 3 -> IoU 3/4, acc 3/4; class 1: tp 2, gt 2, pred 3 -> IoU 2/3, acc 1
    np.testing.assert_allclose(out.iou[:2], [0.75, 2 / 3])
    np.testing.assert_allclose(out.acc[:2], [0.75, 1.0])
    assert math.isnan(out.iou[2]) and math.isnan(out.acc[2])
    assert out.miou == pytest.approx((0.75 + 2 / 3) / 2)
    assert out.macc == pytest.approx(0.875)
    assert out.aacc == pytest.approx(5 / 6)


def test_demo_scores_the_real_sample(capsys):
    assert main(["demo", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    # Recompute independently: reference matrix, IoU by hand over classes with a non-empty union.
    total = np.zeros((150, 150), np.int64)
    for i, gt in enumerate(ade20k.sample_annotations().values()):
        pred = ade20k.simulate_prediction(gt, seed=i).astype(np.int64) - 1
        total += reference.confusion_matrix(pred, gt, 150, reduce_zero_label=True)
    tp = np.diag(total).astype(float)
    union = total.sum(0) + total.sum(1) - tp
    miou = np.mean(tp[union > 0] / union[union > 0])
    assert f"mIoU {100 * miou:6.2f}" in out
    assert f"({total.sum()} evaluated pixels)" in out
