"""Labels off by one class are said out loud by the CLI (evaluate, compare) and by dask.evaluate_files.

Issue 13, item 6: a run whose matrix's mass sits beside the diagonal puts one
line on stderr naming the likely flag and one entry in the JSON ``warnings``;
a right run has ``warnings == []`` and no such line.  The folders are the
package's three real ADE20K validation annotations and ``simulate_prediction``.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from ade20k_metrics import ade20k
from ade20k_metrics.cli import main
from ade20k_metrics.metrics.shift import LabelShiftWarning
from labelgen import sample_with_predictions
from labelgen import write_label_pngs as _write

pytest.importorskip("PIL.Image")  # the maps are written as PNG (and JPEG) files



@pytest.fixture(scope="module")
def sample():
    """(ground truth 0..150, official 1..150 predictions) of the three real annotations."""
    gts, preds = sample_with_predictions()
    return gts, preds


def _evaluate(capsys, *argv):
    status = main(["evaluate", *map(str, argv)])
    out = capsys.readouterr()
    return status, out.err


def _shift_lines(err: str) -> list[str]:
    return [line for line in err.splitlines()
            if "warning:" in line and ("class higher" in line or "class lower" in line)]


def test_right_run_has_an_empty_warnings_list_and_no_line(tmp_path, capsys, sample):
    gts, preds = sample
    status, err = _evaluate(capsys, _write(tmp_path / "p", preds), _write(tmp_path / "g", gts),
                            "--json", tmp_path / "r.json")
    assert status == 0
    assert _shift_lines(err) == []
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["warnings"] == []
    assert doc["metrics"]["miou"] > 0.3  # a right run: the simulated model is decent


def test_detectron2_ground_truth_names_gt_zero_based(tmp_path, capsys, sample):
    # detectron2's annotations_detectron2: class ids 0..149, "other" 255, read as the 1..150 format.
    gts, preds = sample
    d2 = {name: np.where(gt == 0, 255, gt.astype(np.int64) - 1) for name, gt in gts.items()}
    status, err = _evaluate(capsys, _write(tmp_path / "p", preds), _write(tmp_path / "g", d2),
                            "--json", tmp_path / "r.json")
    assert status == 0  # the exit status stays that of a complete run
    lines = _shift_lines(err)
    assert len(lines) == 1 and "one class higher" in lines[0] and "--gt-zero-based" in lines[0]
    doc = json.loads((tmp_path / "r.json").read_text())
    assert len(doc["warnings"]) == 1 and "--gt-zero-based" in doc["warnings"][0]
    assert "LabelShiftWarning" not in err  # one line, not Python's warning with a source location


def test_swapped_folders_with_the_suggested_flag_ask_whether_swapped(tmp_path, capsys, sample):
    gts, preds = sample
    assert max(int(g.max()) for g in gts.values()) < 150  # else --pred-zero-based would refuse a label
    status, err = _evaluate(capsys, _write(tmp_path / "g", gts), _write(tmp_path / "p", preds),
                            "--pred-zero-based", "--json", tmp_path / "r.json")
    assert status == 0
    lines = _shift_lines(err)
    assert len(lines) == 1 and "swapped" in lines[0] and "drop --pred-zero-based" in lines[0]
    assert json.loads((tmp_path / "r.json").read_text())["warnings"][0].endswith("swapped?")


def test_official_ground_truth_declared_zero_based_names_the_flag(tmp_path, capsys, sample):
    # 1..150 annotations read with --gt-zero-based against 0-based predictions: pred = gt - 1.
    gts, preds = sample
    zero_based = {name: p.astype(np.int64) - 1 for name, p in preds.items()}
    status, err = _evaluate(capsys, _write(tmp_path / "p", zero_based), _write(tmp_path / "g", gts),
                            "--pred-zero-based", "--gt-zero-based")
    assert status == 0
    lines = _shift_lines(err)
    assert len(lines) == 1 and "one class lower" in lines[0] and "drop --gt-zero-based" in lines[0]


def test_quiet_keeps_the_json_entry_but_prints_no_line(tmp_path, capsys, sample):
    gts, preds = sample
    d2 = {name: np.where(gt == 0, 255, gt.astype(np.int64) - 1) for name, gt in gts.items()}
    status, err = _evaluate(capsys, _write(tmp_path / "p", preds), _write(tmp_path / "g", d2), "-q",
                            "--json", tmp_path / "r.json")
    assert status == 0 and _shift_lines(err) == []
    assert len(json.loads((tmp_path / "r.json").read_text())["warnings"]) == 1


def test_compare_names_the_shifted_run(tmp_path, capsys, sample):
    gts, preds = sample
    # B: every class but the first written one id too low (class 0 kept, its id 0 would be out of range).
    lower = {name: np.where(p > 1, p.astype(np.int64) - 1, p) for name, p in preds.items()}
    a, b = _write(tmp_path / "a", preds), _write(tmp_path / "b", lower)
    status = main(["compare", str(a), str(b), str(_write(tmp_path / "g", gts)), "--json",
                        str(tmp_path / "c.json"), "--bootstrap", "20", "--permutations", "20"])
    err = capsys.readouterr().err
    assert status == 0
    lines = _shift_lines(err)
    assert len(lines) == 1 and "B (" in lines[0] and "--pred-zero-based" in lines[0]
    doc = json.loads((tmp_path / "c.json").read_text())
    assert len(doc["warnings"]) == 1 and doc["warnings"][0].startswith("B (")


def test_compare_of_two_right_runs_is_silent(tmp_path, capsys, sample):
    gts, preds = sample
    other = {name: ade20k.simulate_prediction(gt, seed=7 + i) for i, (name, gt) in enumerate(gts.items())}
    status = main(["compare", str(_write(tmp_path / "a", preds)), str(_write(tmp_path / "b", other)),
                        str(_write(tmp_path / "g", gts)), "--json", str(tmp_path / "c.json"),
                        "--bootstrap", "20", "--permutations", "20"])
    assert status == 0 and _shift_lines(capsys.readouterr().err) == []
    assert json.loads((tmp_path / "c.json").read_text())["warnings"] == []


def _npy_pairs(tmp_path, preds, gts):
    pairs = []
    for name in gts:
        p, g = tmp_path / f"{name}_pred.npy", tmp_path / f"{name}_gt.npy"
        np.save(p, preds[name])
        np.save(g, gts[name])
        pairs.append((p, g))
    return pairs


def test_dask_evaluate_files_warns_on_official_predictions_against_reduced_ground_truth(tmp_path, sample):
    pytest.importorskip("dask")
    from ade20k_metrics.dask import evaluate_files

    gts, preds = sample
    pairs = _npy_pairs(tmp_path, preds, gts)  # predictions 1..150 not turned into train ids
    with pytest.warns(LabelShiftWarning, match="pred - 1"):
        cm = evaluate_files(pairs, 150, reduce_zero_label=True, partition_size=2)
    assert cm.matrix.sum() > 0


def test_dask_evaluate_files_right_run_is_silent(tmp_path, sample):
    pytest.importorskip("dask")
    from ade20k_metrics.dask import evaluate_files

    gts, preds = sample
    pairs = _npy_pairs(tmp_path, {n: p - 1 for n, p in preds.items()}, gts)
    cm = evaluate_files(pairs, 150, reduce_zero_label=True, partition_size=2)  # filterwarnings=error
    assert cm.compute().miou > 0.3
