"""``evaluate --boundary [RATIO]`` and ``--boundary-f1 [THETA]`` end to end on generated PNG folders.

Expected numbers come from the pure-NumPy reference (core/boundary_reference.py)
image by image, pooled here by the rules DESIGN.md states ("Boundary metrics"),
never from the code under test.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os

import numpy as np
import pytest

from ade20k_metrics.cli import main
from ade20k_metrics.core import boundary_reference as ref

Image = pytest.importorskip("PIL.Image")

K = 8
IGNORE = 255
SHAPES = ((24, 40), (31, 17), (45, 52), (1, 30))


def _blocks(rng, shape, low, high, block):
    h, w = shape
    coarse = rng.integers(low, high + 1, size=(-(-h // block), -(-w // block)))
    return np.kron(coarse, np.ones((block, block), dtype=np.int64))[:h, :w]


def make_folders(tmp_path, seed=3):
    """ADE20K-format folders: ground truth 0 (other) / 1..K / 255 (ignored), predictions 1..K; maps by name."""
    rng = np.random.default_rng(seed)
    preds, gts = {}, {}
    for i, shape in enumerate(SHAPES):
        gt = _blocks(rng, shape, 0, K, 6)
        gt[rng.random(shape) < 0.03] = IGNORE
        pred = np.where(gt == IGNORE, 1, gt)
        pred = np.where(pred == 0, 2, pred)
        noise = _blocks(rng, shape, 1, K, 3)
        flip = rng.random(shape) < 0.25
        pred[flip] = noise[flip]
        preds[f"im{i}"], gts[f"im{i}"] = pred.astype(np.uint8), gt.astype(np.uint8)
    for folder, maps in (("pred", preds), ("gt", gts)):
        (tmp_path / folder).mkdir()
        for name, arr in maps.items():
            Image.fromarray(arr).save(tmp_path / folder / f"{name}.png")
    return tmp_path / "pred", tmp_path / "gt", preds, gts


def expected_boundary(preds, gts, ratio):
    """Summed reference band matrix, per-class Boundary IoU (NaN where the union is 0) and its NaN-mean."""
    band = sum(ref.boundary_matrix(preds[n].astype(np.int64) - 1, gts[n], K, dilation_ratio=ratio,
                                   ignore_index=IGNORE, reduce_zero_label=True) for n in preds)
    tp = np.diag(band)[:K].astype(np.float64)
    union = band[:K, :].sum(axis=1) + band[:, :K].sum(axis=0) - tp
    iou = np.array([tp[c] / union[c] if union[c] > 0 else math.nan for c in range(K)])
    return band, iou, _nanmean(iou)


def expected_bf(preds, gts, theta):
    """Per class the mean over images where the reference's BF score is defined; its NaN-mean over classes."""
    scores = np.concatenate([ref.boundary_f1_per_image(preds[n].astype(np.int64) - 1, gts[n], K, boundary_f1=theta,
                                                       ignore_index=IGNORE, reduce_zero_label=True) for n in preds])
    per_class = []
    for c in range(K):
        defined = scores[~np.isnan(scores[:, c]), c]
        per_class.append(float(defined.sum() / len(defined)) if len(defined) else math.nan)
    per_class = np.array(per_class)
    return per_class, _nanmean(per_class)


def _nanmean(values):
    kept = [v for v in values if not math.isnan(v)]
    return sum(kept) / len(kept) if kept else math.nan


def run(argv, capsys):
    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:  # argparse's own usage errors
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def _close(value, expected):
    if math.isnan(expected):
        return value is None or (isinstance(value, float) and math.isnan(value))
    return value is not None and math.isclose(value, expected, rel_tol=1e-12, abs_tol=1e-15)


@pytest.fixture
def folders(tmp_path):
    return make_folders(tmp_path)


def test_every_report_carries_the_reference_numbers(folders, tmp_path, capsys):
    pred_dir, gt_dir, preds, gts = folders
    out_json, out_csv, out_md = tmp_path / "r.json", tmp_path / "r.csv", tmp_path / "r.md"
    code, out, err = run(["evaluate", pred_dir, gt_dir, "--num-classes", K, "--boundary", "--boundary-f1",
                          "--json", out_json, "--csv", out_csv, "--markdown", out_md], capsys)
    assert code == 0, err
    band, biou, mbiou = expected_boundary(preds, gts, 0.02)      # --boundary without a value: 0.02
    bf, mbf = expected_bf(preds, gts, 0.0075)                     # --boundary-f1 without a value: 0.0075
    assert not np.isnan(biou).all() and not np.isnan(bf).all()
    assert band[:K, :K].trace() > 0

    doc = json.loads(out_json.read_text())
    assert doc["boundary_matrix"] == band.tolist()
    assert doc["environment"]["boundary"] == 0.02 and doc["environment"]["boundary_f1"] == 0.0075
    assert _close(doc["metrics"]["mboundary_iou"], mbiou)
    assert _close(doc["metrics"]["mboundary_f1"], mbf)
    for c, row in enumerate(doc["per_class"]):
        assert _close(row["boundary_iou"], biou[c]), c
        assert _close(row["boundary_f1"], bf[c]), c

    with open(out_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == K
    for c, row in enumerate(rows):
        for field, want in (("boundary_iou", biou[c]), ("boundary_f1", bf[c])):
            assert (row[field] == "") if math.isnan(want) else math.isclose(float(row[field]), want, rel_tol=1e-12)

    md = out_md.read_text()
    assert f"| mBoundaryIoU | {100 * mbiou:.2f} |" in md
    assert f"| mBF | {100 * mbf:.2f} |" in md
    assert "| id | class | IoU | Acc | BIoU | BF | gt pixels | pred pixels | kind |" in md
    c = int(np.flatnonzero(~np.isnan(biou) & ~np.isnan(bf))[0])
    row_md = next(line for line in md.splitlines() if line.startswith(f"| {c} | class {c} |"))
    assert row_md.split(" | ")[4:6] == [f"{100 * biou[c]:.2f}", f"{100 * bf[c]:.2f}"]

    # The printed table: the two columns and the two summary lines.
    header = next(line for line in out.splitlines() if line.lstrip().startswith("id"))
    assert header.split() == ["id", "class", "IoU", "Acc", "BIoU", "BF", "gt", "pixels", "pred", "pixels", "kind"]
    assert f"mBoundaryIoU {100 * mbiou:6.2f}" in out
    assert f"mBF" in out and f"{100 * mbf:6.2f}" in out.split("mBF", 1)[1].splitlines()[0]


def test_an_explicit_ratio_is_used(folders, tmp_path, capsys):
    pred_dir, gt_dir, preds, gts = folders
    out_json = tmp_path / "r.json"
    code, _, err = run(["evaluate", pred_dir, gt_dir, "--num-classes", K, "--boundary", "0.1",
                        "--boundary-f1=0.03", "--json", out_json], capsys)
    assert code == 0, err
    band, biou, _ = expected_boundary(preds, gts, 0.1)
    assert not np.array_equal(band, expected_boundary(preds, gts, 0.02)[0])  # the ratio matters here
    bf, mbf = expected_bf(preds, gts, 0.03)
    doc = json.loads(out_json.read_text())
    assert doc["boundary_matrix"] == band.tolist()
    assert doc["environment"]["boundary"] == 0.1 and doc["environment"]["boundary_f1"] == 0.03
    assert all(_close(r["boundary_iou"], biou[c]) for c, r in enumerate(doc["per_class"]))
    assert all(_close(r["boundary_f1"], bf[c]) for c, r in enumerate(doc["per_class"]))
    assert _close(doc["metrics"]["mboundary_f1"], mbf)


def test_boundary_iou_alone_and_region_metrics_unchanged(folders, tmp_path, capsys):
    pred_dir, gt_dir, preds, gts = folders
    plain, with_band = tmp_path / "plain.json", tmp_path / "band.json"
    assert run(["evaluate", pred_dir, gt_dir, "--num-classes", K, "--json", plain], capsys)[0] == 0
    assert run(["evaluate", pred_dir, gt_dir, "--num-classes", K, "--json", with_band, "--boundary"], capsys)[0] == 0
    a, b = json.loads(plain.read_text()), json.loads(with_band.read_text())
    assert "boundary_matrix" not in a and "mboundary_iou" not in a["metrics"]
    assert all("boundary_iou" not in r and "boundary_f1" not in r for r in a["per_class"])
    assert "mboundary_f1" not in b["metrics"] and all("boundary_f1" not in r for r in b["per_class"])
    assert a["confusion_matrix"] == b["confusion_matrix"]
    assert {k: v for k, v in b["metrics"].items() if k != "mboundary_iou"} == a["metrics"]
    assert b["boundary_matrix"] == expected_boundary(preds, gts, 0.02)[0].tolist()


@pytest.mark.parametrize("extra", [["--boundary", "0"], ["--boundary", "-0.1"], ["--boundary", "nan"],
                                   ["--boundary-f1", "inf"], ["--boundary=abc"],
                                   ["--boundary-f1", "--ci", "0.9"], ["--boundary-f1", "--per-image", "X"],
                                   ["--boundary", "--dataset", "ade20k"]])
def test_bad_boundary_options_are_usage_errors_and_write_nothing(folders, tmp_path, capsys, extra):
    pred_dir, gt_dir, _, _ = folders
    out_json = tmp_path / "r.json"
    extra = [str(tmp_path / "per.csv") if e == "X" else e for e in extra]
    num = [] if "--dataset" in extra else ["--num-classes", K]
    code, out, err = run(["evaluate", pred_dir, gt_dir, *num, "--json", out_json, *extra], capsys)
    assert code == 2, err
    assert "boundary" in err and out == ""
    assert not out_json.exists() and not (tmp_path / "per.csv").exists()
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tmp-")]


def test_a_value_option_before_the_folders_says_how_to_write_it(folders, capsys):
    pred_dir, gt_dir, _, _ = folders
    code, _, err = run(["evaluate", "--boundary", pred_dir, gt_dir], capsys)
    assert code == 2 and "--boundary=RATIO" in err


def test_the_plot_marks_each_class_at_its_reference_boundary_iou(folders, tmp_path, capsys):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ade20k_metrics import ConfusionMatrix
    from ade20k_metrics.io import figures
    from ade20k_metrics.io.report import ClassInfo

    pred_dir, gt_dir, preds, gts = folders
    code, _, err = run(["evaluate", pred_dir, gt_dir, "--num-classes", K, "--boundary", "--plot",
                        tmp_path / "p.png"], capsys)
    assert code == 0, err
    with Image.open(tmp_path / "p.png") as im:
        assert im.format == "PNG" and im.width > 300
    # Where the markers go: draw the bars of the same metrics and read the marker positions back.
    cm = ConfusionMatrix(K, reduce_zero_label=True, boundary=0.02)
    for n in preds:
        cm.update(preds[n].astype(np.int64) - 1, gts[n])
    metrics = cm.compute()
    _, biou, _ = expected_boundary(preds, gts, 0.02)
    fig, ax = plt.subplots()
    try:
        classes = ClassInfo(tuple(f"class {i}" for i in range(K)), None)
        handles = figures.per_class_axes([ax], np.asarray(metrics.iou), float(metrics.miou), classes,
                                         markers=figures.boundary_markers(metrics))
        (line,) = [line for line in ax.get_lines() if line.get_marker() == "D"]
        order = [int(label.get_text().split()[1]) for label in ax.get_yticklabels()]
        drawn = dict(zip(line.get_ydata(), line.get_xdata()))
        want = {y: 100 * biou[c] for y, c in enumerate(order) if not math.isnan(biou[c])}
        assert drawn.keys() == want.keys()
        assert all(math.isclose(drawn[y], want[y], rel_tol=1e-12) for y in want)
        assert any("Boundary IoU" in h.get_label() for h in handles)
    finally:
        plt.close(fig)


def test_boundary_iou_with_per_image_results_and_an_interval(folders, tmp_path, capsys):
    pred_dir, gt_dir, preds, gts = folders
    out_json, per_image = tmp_path / "r.json", tmp_path / "per.csv"
    code, _, err = run(["evaluate", pred_dir, gt_dir, "--num-classes", K, "--boundary", "--ci", "0.9",
                        "--bootstrap", 20, "--per-image", per_image, "--json", out_json], capsys)
    assert code == 0, err
    band, biou, mbiou = expected_boundary(preds, gts, 0.02)
    doc = json.loads(out_json.read_text())
    assert doc["boundary_matrix"] == band.tolist()
    assert _close(doc["metrics"]["mboundary_iou"], mbiou)
    assert all(_close(r["boundary_iou"], biou[c]) for c, r in enumerate(doc["per_class"]))
    assert per_image.exists() and doc["metrics"]["miou_ci"] is not None
