"""Research outputs from the command line (issue 16): --ci, --per-image, --latex, compare, figures.

Expected numbers are worked out by hand in the comments (tiny 2-class data
sets written as 0-based PNGs), never taken from the code under test.
"""
from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest

from ade20k_metrics.cli import main

Image = pytest.importorskip("PIL.Image")

ZERO = ["--num-classes", "2", "--gt-zero-based", "--pred-zero-based"]


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def write(folder, maps):
    folder.mkdir(parents=True, exist_ok=True)
    for name, arr in maps.items():
        Image.fromarray(np.asarray(arr, np.uint8)).save(folder / f"{name}.png")
    return folder


# Image "a": gt [0 0 1], pred [0 0 0]: IoU0 = 2/3, IoU1 = 0 -> own mIoU 1/3, aAcc 2/3.
# Image "b": gt [0 1],   pred [0 1]:   perfect -> own mIoU 1.
GT = {"a": [[0, 0, 1]], "b": [[0, 1, 1]]}
PRED = {"a": [[0, 0, 0]], "b": [[0, 1, 1]]}


@pytest.fixture
def tiny(tmp_path):
    return write(tmp_path / "pred", PRED), write(tmp_path / "gt", GT)


def test_ci_per_image_and_latex(tiny, tmp_path, capsys):
    pred, gt = tiny
    code, out, err = run(["evaluate", pred, gt, *ZERO, "--ci", "0.95", "--seed", "0", "--json", tmp_path / "e.json",
                          "--per-image", tmp_path / "pi.csv", "--latex", tmp_path / "t.tex", "--name", "Ours_v2"],
                         capsys)
    assert code == 0, err
    doc = json.loads((tmp_path / "e.json").read_text())
    # Resamples of two images are aa (mIoU 1/3), ab/ba (dataset mIoU of both) or bb (1); aa and bb each a
    # quarter of the time, so the 2.5% and 97.5% quantiles of 1000 resamples are exactly 1/3 and 1.
    low, high = doc["metrics"]["miou_ci"]
    assert low == pytest.approx(1 / 3) and high == pytest.approx(1.0)
    assert doc["ci"]["confidence"] == 0.95 and doc["ci"]["resamples"] == 1000 and doc["ci"]["seed"] == 0
    assert "95% CI [33.33, 100.00]" in out
    rows = read_csv(tmp_path / "pi.csv")
    assert [r["image"] for r in rows] == ["a", "b"]
    assert rows[0]["pixels"] == "3" and float(rows[0]["miou"]) == pytest.approx(1 / 3)
    assert float(rows[0]["aacc"]) == pytest.approx(2 / 3)
    assert float(rows[0]["iou_0"]) == pytest.approx(2 / 3) and float(rows[0]["iou_1"]) == 0.0
    assert float(rows[1]["miou"]) == 1.0 and list(rows[0])[:6] == ["image", "pixels", "miou", "aacc", "iou_0", "iou_1"]
    tex = (tmp_path / "t.tex").read_text()
    # Dataset: class 0 tp 3, gt 3, pred 4 -> 3/4; class 1 tp 2, gt 3, pred 2 -> 2/3: mIoU 70.83.
    assert r"Ours\_v2 & 70.83 [33.33, 100.00]" in tex
    assert tex.count(r"\begin{tabular}") == 2 and r"\toprule" in tex and "95\\% percentile bootstrap" in tex


def test_per_image_csv_leaves_undefined_cells_empty(tmp_path, capsys):
    pred = write(tmp_path / "p", {"x": [[0, 0]]})
    gt = write(tmp_path / "g", {"x": [[0, 0]]})
    code, _, err = run(["evaluate", pred, gt, *ZERO, "--per-image", tmp_path / "x.csv"], capsys)
    assert code == 0, err
    row = read_csv(tmp_path / "x.csv")[0]
    assert row["iou_0"] == "1.0" and row["iou_1"] == ""  # class 1 is in neither map


def test_ci_option_is_checked_before_any_work(tiny, capsys):
    pred, gt = tiny
    for bad, words in ((["--ci", "95"], "for 95% write 0.95"), (["--ci", "0"], "in (0, 1)"),
                       (["--bootstrap", "0"], "resamples"), (["--seed", "-1"], "seed")):
        with pytest.raises(SystemExit) as stop:  # argparse's usage error
            main([str(a) for a in ["evaluate", pred, gt, *ZERO, *bad]])
        assert stop.value.code == 2, bad
        assert words in capsys.readouterr().err


def _runs(tmp_path, n=3):
    # n identical images: gt [0 0 1 1]; A predicts [0 0 0 0] (IoU0 1/2, IoU1 0), B is perfect.
    gt = {f"img{i}": [[0, 0, 1, 1]] for i in range(n)}
    a = {k: [[0, 0, 0, 0]] for k in gt}
    return write(tmp_path / "A", a), write(tmp_path / "B", dict(gt)), write(tmp_path / "GT", gt)


def test_compare_reports_the_difference_interval_and_p_value(tmp_path, capsys):
    a, b, gt = _runs(tmp_path)
    code, out, err = run(["compare", a, b, gt, *ZERO, "--json", tmp_path / "c.json", "--markdown", tmp_path / "c.md",
                          "--latex", tmp_path / "c.tex", "--per-image", tmp_path / "c.csv", "--permutations", 4000,
                          "--name-a", "base", "--name-b", "ours"], capsys)
    assert code == 0, err
    doc = json.loads((tmp_path / "c.json").read_text())
    assert doc["miou_a"] == pytest.approx(1 / 4) and doc["miou_b"] == 1.0
    assert doc["delta"] == pytest.approx(3 / 4)
    # Every resample holds copies of the same image: the interval is the point.
    assert doc["delta_ci"] == [pytest.approx(3 / 4), pytest.approx(3 / 4)]
    # Swapping k of the 3 identical images: |d| reaches 3/4 only for k = 0 or 3, 2 of the 8 equally likely
    # patterns, so p is 1/4 up to Monte Carlo error (4000 permutations: sd 0.007).
    assert doc["p_value"] == pytest.approx(0.25, abs=0.035)
    assert {"miou_a", "miou_b", "delta", "delta_ci", "p_value"} <= set(doc)
    per_class = {c["id"]: c for c in doc["per_class"]}
    assert per_class[1]["delta"] == pytest.approx(1.0) and per_class[0]["delta"] == pytest.approx(1 / 2)
    assert doc["per_class"][0]["id"] == 1  # the largest change first
    assert "B: ours" in out and "+75.00" in out and "p = 0.2" in out
    assert "| B - A | +75.00 |" in (tmp_path / "c.md").read_text()
    assert r"$\Delta$ (B $-$ A) & +75.00" in (tmp_path / "c.tex").read_text()
    rows = read_csv(tmp_path / "c.csv")
    assert len(rows) == 3 and float(rows[0]["delta"]) == pytest.approx(3 / 4)


def test_compare_needs_the_same_files_in_all_three_folders(tmp_path, capsys):
    a, b, gt = _runs(tmp_path)
    (b / "img2.png").unlink()
    code, _, err = run(["compare", a, b, gt, *ZERO], capsys)
    assert code == 1 and "same ground-truth files" in err and "img2" in err


def test_compare_reads_each_ground_truth_once(tmp_path, capsys, monkeypatch):
    from ade20k_metrics.io import label_files

    a, b, gt = _runs(tmp_path)
    opened = []
    original = label_files._open_label_image

    def counting(path):
        opened.append(path.parent.name)
        return original(path)

    monkeypatch.setattr(label_files, "_open_label_image", counting)
    import ade20k_metrics.io.per_image as per_image

    monkeypatch.setattr(per_image, "_open_label_image", counting)
    code, _, err = run(["compare", a, b, gt, *ZERO, "--threads", 1], capsys)
    assert code == 0, err
    assert sorted(opened) == sorted(["A"] * 3 + ["B"] * 3 + ["GT"] * 3)


# -- figures --------------------------------------------------------------------------------------------

def test_per_class_chart_names_every_class_sorted_with_absent_ones_last():
    pytest.importorskip("matplotlib")
    from ade20k_metrics.io import figures
    from ade20k_metrics.io.report import ClassInfo, import_pyplot

    plt = import_pyplot()
    k = 150
    iou = np.linspace(0.9, 0.1, k)
    iou[[3, 77, 140]] = np.nan          # absent classes
    iou[[10, 20]] = iou[[20, 10]]       # out of order by id
    classes = ClassInfo.for_num_classes(k)
    fig, axes = plt.subplots(1, 3)
    try:
        handles = figures.per_class_axes(list(axes), iou, float(np.nanmean(iou)), classes)
        names = [t.get_text() for ax in axes for t in ax.get_yticklabels()]
    finally:
        plt.close(fig)
    valued = [c for c in np.argsort(-np.nan_to_num(iou, nan=-1), kind="stable") if not np.isnan(iou[c])]
    assert names == [classes.names[c] for c in valued] + [classes.names[c] for c in (3, 77, 140)]
    assert any("mIoU" in h.get_label() for h in handles) and any("absent" in h.get_label() for h in handles)


def test_confused_pairs_by_hand():
    from ade20k_metrics.io.figures import confused_pairs

    m = np.array([[10, 5, 0], [1, 3, 6], [0, 0, 0]])
    # Off-diagonal cells by pixels: (1, 2) 6 px = 6/10 of class 1; (0, 1) 5 px = 5/15; (1, 0) 1 px = 1/10.
    assert confused_pairs(m) == [(1, 2, 0.6, 6), (0, 1, pytest.approx(1 / 3), 5), (1, 0, 0.1, 1)]
    assert confused_pairs(np.eye(3, dtype=int)) == []


def test_evaluate_and_compare_figures_are_written(tiny, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    pred, gt = tiny
    code, _, err = run(["evaluate", pred, gt, *ZERO, "--plot", tmp_path / "e.png"], capsys)
    assert code == 0, err
    a, b, g = _runs(tmp_path)
    code, _, err = run(["compare", a, b, g, *ZERO, "--plot", tmp_path / "c.pdf", "--permutations", 10], capsys)
    assert code == 0, err
    with Image.open(tmp_path / "e.png") as im:
        assert im.format == "PNG" and im.width > 500
    assert (tmp_path / "c.pdf").read_bytes()[:4] == b"%PDF"


def test_show_has_a_title_and_a_legend_of_the_classes_drawn(tmp_path, capsys):
    from ade20k_metrics import ade20k

    gt = np.zeros((60, 80), np.uint8)
    gt[:, :40] = 1    # wall
    gt[:, 40:] = 3    # sky
    pred = gt.copy()
    pred[30:, 40:] = 5  # tree instead of sky
    Image.fromarray(pred).save(tmp_path / "p.png")
    Image.fromarray(gt).save(tmp_path / "g.png")
    code, _, err = run(["show", tmp_path / "p.png", tmp_path / "g.png", "-o", tmp_path / "o.png"], capsys)
    assert code == 0, err
    with Image.open(tmp_path / "o.png") as im:
        picture = np.asarray(im.convert("RGB"))
    header = picture[: picture.shape[0] - 60]
    palette = ade20k.classes().palette
    colours = {tuple(c) for c in header.reshape(-1, 3)}
    # A swatch of each class drawn (wall, sky, tree) is in the header, and of no other class.
    for c in (0, 2, 4):
        assert tuple(palette[c]) in colours
    assert tuple(palette[7]) not in colours
    assert header.shape[0] >= 3 * 12  # title, legend and panel names


def test_outputs_are_all_or_nothing(tmp_path, capsys):
    a, b, gt = _runs(tmp_path)
    if not os.path.isdir("/proc/self"):
        pytest.skip("needs /proc, a folder where nobody can create files")
    # An output that cannot be created: refused before the work, and nothing else is written.
    code, out, err = run(["compare", a, b, gt, *ZERO, "--json", tmp_path / "c.json",
                          "--markdown", "/proc/ade20k-metrics-test.md"], capsys)
    assert code == 1 and "--markdown" in err and "cannot be written" in err
    assert out == "" and sorted(os.listdir(tmp_path)) == ["A", "B", "GT"]
    code, out, err = run(["evaluate", b, gt, *ZERO, "--per-image", tmp_path / "p.csv",
                          "--latex", "/proc/ade20k-metrics-test.tex"], capsys)
    assert code == 1 and "--latex" in err and sorted(os.listdir(tmp_path)) == ["A", "B", "GT"]


def test_a_failed_run_leaves_no_research_output(tmp_path, capsys):
    a, b, gt = _runs(tmp_path)
    Image.fromarray(np.full((1, 4), 7, np.uint8)).save(b / "img1.png")  # label 7 of 2 classes
    code, _, err = run(["compare", a, b, gt, *ZERO, "--json", tmp_path / "c.json", "--latex", tmp_path / "c.tex"],
                       capsys)
    assert code == 1 and "img1" in err
    code, _, err = run(["evaluate", b, gt, *ZERO, "--per-image", tmp_path / "p.csv", "--latex", tmp_path / "e.tex"],
                       capsys)
    assert code == 1
    assert sorted(os.listdir(tmp_path)) == ["A", "B", "GT"]  # no output, no temporary
