"""The command line end to end on generated PNG folders: numbers, reports, bad input, exit codes.

Expected numbers come from ``reference.confusion_matrix`` and IoU/accuracy
formulas written out here, never from the code under test.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import sys
import types

import numpy as np
import pytest

from ade20k_metrics import ade20k, reference
from ade20k_metrics.cli import main

Image = pytest.importorskip("PIL.Image")

K = 150


# -- helpers ----------------------------------------------------------------------------------------

def block_map(rng, shape, low, high, block=8):
    """A coherent label map: random labels in [low, high] on blocks of ``block`` pixels."""
    h, w = shape
    coarse = rng.integers(low, high + 1, size=(-(-h // block), -(-w // block)))
    return np.kron(coarse, np.ones((block, block), dtype=np.int64))[:h, :w].astype(np.uint8)


def make_dataset(rng, count=5, shape=(24, 40)):
    """(preds 1..150, gts 0..150) by name; predictions mostly right, with a few classes only."""
    preds, gts = {}, {}
    for i in range(count):
        gt = block_map(rng, shape, 0, 12)
        pred = gt.copy()
        noise = block_map(rng, shape, 1, 14, block=4)
        flip = rng.random(shape) < 0.3
        pred[flip] = noise[flip]
        pred[pred == 0] = 3
        name = f"ADE_val_{i:08d}"
        preds[name], gts[name] = pred, gt
    return preds, gts


def write_folder(folder, maps):
    folder.mkdir(parents=True, exist_ok=True)
    for name, arr in maps.items():
        path = folder / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr).save(path)
    return folder


def expected_matrix(preds, gts, pred_one_based=True, num_classes=K, reduce_zero_label=True, ignore_index=255):
    total = np.zeros((num_classes, num_classes), np.int64)
    for name in gts:
        pred = preds[name].astype(np.int64) - (1 if pred_one_based else 0)
        total += reference.confusion_matrix(pred, gts[name], num_classes, ignore_index=ignore_index,
                                            reduce_zero_label=reduce_zero_label)
    return total


def hand_metrics(matrix):
    """mmseg convention by hand: NaN where a class has no union (IoU) or no ground truth (Acc)."""
    m = matrix.astype(float)
    tp, gt, pred = np.diag(m), m.sum(1), m.sum(0)
    union = gt + pred - tp
    iou = np.full(len(m), np.nan)
    acc = np.full(len(m), np.nan)
    iou[union > 0] = tp[union > 0] / union[union > 0]
    acc[gt > 0] = tp[gt > 0] / gt[gt > 0]
    aacc = tp.sum() / m.sum()
    miou = float(np.mean(iou[union > 0]))
    macc = float(np.mean(acc[gt > 0]))
    return iou, acc, miou, macc, float(aacc)


@pytest.fixture
def dataset(tmp_path):
    preds, gts = make_dataset(np.random.default_rng(5))
    return (write_folder(tmp_path / "pred", preds), write_folder(tmp_path / "gt", gts), preds, gts)


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_close_or_null(value, expected):
    if math.isnan(expected):
        assert value is None
    else:
        assert value == pytest.approx(expected, rel=1e-12, abs=1e-15)


# -- scoring ----------------------------------------------------------------------------------------

def test_json_matches_independent_numbers(dataset, tmp_path, capsys):
    pred_dir, gt_dir, preds, gts = dataset
    out_json = tmp_path / "out" / "result.json"
    out_json.parent.mkdir()
    code, out, err = run(["evaluate", pred_dir, gt_dir, "--json", out_json, "--threads", 2], capsys)
    assert code == 0, err
    assert err == ""  # stderr is not a terminal under pytest: no progress bar
    doc = json.loads(out_json.read_text())

    matrix = expected_matrix(preds, gts)
    iou, acc, miou, macc, aacc = hand_metrics(matrix)
    stuff = ade20k.classes().stuff
    present = ~np.isnan(iou)
    assert np.array_equal(np.array(doc["confusion_matrix"]), matrix)
    m = doc["metrics"]
    assert m["miou"] == pytest.approx(miou)
    assert m["macc"] == pytest.approx(macc)
    assert m["aacc"] == pytest.approx(aacc)
    assert m["score"] == pytest.approx((aacc + miou) / 2)
    assert m["miou_stuff"] == pytest.approx(np.mean(iou[present & stuff]))
    assert m["miou_thing"] == pytest.approx(np.mean(iou[present & ~stuff]))

    rows = doc["per_class"]
    assert len(rows) == K
    assert [r["name"] for r in rows] == list(ade20k.classes().names)
    assert rows[0]["name"] == "wall" and rows[0]["kind"] == "stuff"
    for c, row in enumerate(rows):
        assert_close_or_null(row["iou"], iou[c])
        assert_close_or_null(row["acc"], acc[c])
        assert row["gt_pixels"] == matrix[c].sum() and row["pred_pixels"] == matrix[:, c].sum()
    assert rows[100]["iou"] is None  # class 101 never occurs: undefined, written as null

    env = doc["environment"]
    assert env["files"] == 5 and env["threads"] == 2 and env["convention"] == "mmseg"
    assert env["numpy"] == np.__version__
    assert env["pixels"] == int(matrix.sum())
    keys = "".join(f"{name}\n" for name in sorted(gts))
    assert env["files_sha256"] == hashlib.sha256(keys.encode()).hexdigest()
    assert env["cpu"] and env["ade20k_metrics"]

    # The printed summary shows the same numbers in percent, and the per-class table.
    assert f"mIoU        {100 * miou:6.2f}" in out
    assert f"score       {100 * (aacc + miou) / 2:6.2f}" in out
    assert f"{100 * iou[0]:6.2f}" in out.splitlines()[1] and "wall" in out.splitlines()[1]


def test_zero_based_predictions_give_the_same_numbers(dataset, tmp_path, capsys):
    pred_dir, gt_dir, preds, gts = dataset
    zero_based = write_folder(tmp_path / "pred0", {n: p - 1 for n, p in preds.items()})
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    assert run(["evaluate", pred_dir, gt_dir, "--json", a], capsys)[0] == 0
    assert run(["evaluate", zero_based, gt_dir, "--json", b, "--pred-zero-based"], capsys)[0] == 0
    doc_a, doc_b = json.loads(a.read_text()), json.loads(b.read_text())
    assert doc_a["confusion_matrix"] == doc_b["confusion_matrix"]
    assert doc_b["environment"]["prediction_labels"] == "0..149"


@pytest.mark.parametrize("convention", ["csail", "detectron2", "torchmetrics"])
def test_convention_is_passed_through(dataset, tmp_path, capsys, convention):
    pred_dir, gt_dir, preds, gts = dataset
    code, _, err = run(["evaluate", pred_dir, gt_dir, "--convention", convention,
                        "--json", tmp_path / "r.json"], capsys)
    assert code == 0, err
    doc = json.loads((tmp_path / "r.json").read_text())
    m = expected_matrix(preds, gts).astype(float)
    tp, gt, pred = np.diag(m), m.sum(1), m.sum(0)
    union = gt + pred - tp
    assert (pred[gt == 0] > 0).any()  # the data has predicted-only classes, where conventions differ
    if convention == "csail":  # every class counts; IoU = I / (U + 1e-10)
        miou = np.mean(tp / (union + 1e-10))
        macc = np.mean(np.where(gt > 0, tp / np.maximum(gt, 1), 0.0))
    elif convention == "detectron2":  # classes present in the ground truth only
        miou = np.mean(tp[gt > 0] / union[gt > 0])
        macc = np.mean(tp[gt > 0] / gt[gt > 0])
    else:  # torchmetrics: classes seen at all; a predicted-only class has Acc 0
        seen = union > 0
        miou = np.mean(tp[seen] / union[seen])
        macc = np.mean(np.where(gt[seen] > 0, tp[seen] / np.maximum(gt[seen], 1), 0.0))
    assert doc["metrics"]["miou"] == pytest.approx(miou, rel=1e-9)
    assert doc["metrics"]["macc"] == pytest.approx(macc, rel=1e-9)
    assert doc["metrics"]["score"] == pytest.approx((miou + tp.sum() / m.sum()) / 2, rel=1e-9)
    assert doc["environment"]["convention"] == convention


def test_generic_dataset_zero_based_with_ignore_label(tmp_path, capsys):
    rng = np.random.default_rng(11)
    gt = block_map(rng, (16, 16), 0, 4, block=4)
    gt[:4, :4] = 255
    pred = block_map(rng, (16, 16), 0, 4, block=2)
    write_folder(tmp_path / "p", {"x": pred})
    write_folder(tmp_path / "g", {"x": gt})
    code, out, err = run(["evaluate", tmp_path / "p", tmp_path / "g", "--num-classes", 5, "--gt-zero-based",
                          "--pred-zero-based", "--json", tmp_path / "r.json"], capsys)
    assert code == 0, err
    doc = json.loads((tmp_path / "r.json").read_text())
    matrix = reference.confusion_matrix(pred, gt, 5, ignore_index=255)
    assert np.array_equal(doc["confusion_matrix"], matrix)
    assert doc["metrics"]["miou"] == pytest.approx(hand_metrics(matrix)[2])
    assert [r["name"] for r in doc["per_class"]] == [f"class {i}" for i in range(5)]
    assert "miou_stuff" not in doc["metrics"]  # no stuff/thing split outside ADE20K


def test_ignore_index_none_evaluates_every_label(tmp_path, capsys):
    gt = np.array([[0, 1], [2, 3]], np.uint8)
    pred = np.array([[0, 1], [3, 3]], np.uint8)
    write_folder(tmp_path / "p", {"x": pred})
    write_folder(tmp_path / "g", {"x": gt})
    code, _, err = run(["evaluate", tmp_path / "p", tmp_path / "g", "--num-classes", 4, "--gt-zero-based",
                        "--pred-zero-based", "--ignore-index", "none", "--json", tmp_path / "r.json"], capsys)
    assert code == 0, err
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["metrics"]["aacc"] == pytest.approx(3 / 4)
    assert doc["environment"]["ignore_index"] is None


def test_recursive_pairing_skips_hidden_and_other_files(tmp_path, capsys):
    rng = np.random.default_rng(2)
    preds, gts = make_dataset(rng, count=3)
    nested_p = {f"city{i % 2}/{n}": a for i, (n, a) in enumerate(preds.items())}
    nested_g = {f"city{i % 2}/{n}": a for i, (n, a) in enumerate(gts.items())}
    write_folder(tmp_path / "p", nested_p)
    write_folder(tmp_path / "g", nested_g)
    (tmp_path / "p" / ".hidden.png").write_bytes(b"not an image")
    (tmp_path / "g" / ".cache").mkdir()
    (tmp_path / "g" / ".cache" / "junk.png").write_bytes(b"not an image")
    (tmp_path / "p" / "notes.txt").write_text("ignored")
    code, _, err = run(["evaluate", tmp_path / "p", tmp_path / "g", "--json", tmp_path / "r.json"], capsys)
    assert code == 0, err
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["environment"]["files"] == 3
    assert np.array_equal(doc["confusion_matrix"], expected_matrix(preds, gts))


def test_sixteen_bit_and_palette_images(tmp_path, capsys):
    rng = np.random.default_rng(8)
    gt = block_map(rng, (16, 24), 0, 150)
    pred = block_map(rng, (16, 24), 1, 150)
    (tmp_path / "p").mkdir()
    (tmp_path / "g").mkdir()
    palette_image = Image.frombytes("P", (24, 16), pred.tobytes())
    palette_image.putpalette(ade20k.classes().palette.ravel().tolist())
    palette_image.save(tmp_path / "p" / "x.png")
    Image.fromarray(gt.astype(np.uint16)).save(tmp_path / "g" / "x.png")
    with Image.open(tmp_path / "g" / "x.png") as im:
        assert im.mode.startswith("I")
    code, _, err = run(["evaluate", tmp_path / "p", tmp_path / "g", "--json", tmp_path / "r.json"], capsys)
    assert code == 0, err
    doc = json.loads((tmp_path / "r.json").read_text())
    assert np.array_equal(doc["confusion_matrix"], expected_matrix({"x": pred}, {"x": gt}))


# -- reports ----------------------------------------------------------------------------------------

def test_csv_and_markdown(dataset, tmp_path, capsys):
    pred_dir, gt_dir, preds, gts = dataset
    code, _, err = run(["evaluate", pred_dir, gt_dir, "--csv", tmp_path / "r.csv",
                        "--markdown", tmp_path / "r.md"], capsys)
    assert code == 0, err
    iou, acc, miou, _, _ = hand_metrics(expected_matrix(preds, gts))
    rows = list(csv.DictReader(io.StringIO((tmp_path / "r.csv").read_text())))
    assert len(rows) == K
    assert rows[1]["name"] == "building"
    for c, row in enumerate(rows):
        if math.isnan(iou[c]):
            assert row["iou"] == ""
        else:
            assert float(row["iou"]) == pytest.approx(iou[c], rel=1e-12)
    md = (tmp_path / "r.md").read_text()
    assert f"| mIoU | {100 * miou:.2f} |" in md
    assert "| 0 | wall |" in md


def test_plots(dataset, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    pred_dir, gt_dir, _, _ = dataset
    code, out, err = run(["evaluate", pred_dir, gt_dir, "--plot", tmp_path / "classes.png", "--params", 40,
                          "--leaderboard-plot", tmp_path / "board.png", "--rank-anyway"], capsys)
    assert code == 0, err
    for name in ("classes.png", "board.png"):
        with Image.open(tmp_path / name) as im:
            assert im.format == "PNG" and im.width > 300 and im.height > 300
    assert "this run" in out and "<==" in out
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tmp-")]


def test_missing_matplotlib_is_a_clear_error_before_any_work(dataset, tmp_path, capsys, monkeypatch):
    pred_dir, gt_dir, _, _ = dataset
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    code, out, err = run(["evaluate", pred_dir, gt_dir, "--plot", tmp_path / "x.png"], capsys)
    assert code == 1
    assert "matplotlib" in err and out == ""


# -- bad input --------------------------------------------------------------------------------------

def test_missing_counterparts_are_listed(dataset, tmp_path, capsys):
    pred_dir, gt_dir, preds, gts = dataset
    (pred_dir / "ADE_val_00000001.png").unlink()
    Image.fromarray(preds["ADE_val_00000000"]).save(pred_dir / "extra_prediction.png")
    code, out, err = run(["evaluate", pred_dir, gt_dir], capsys)
    assert code == 1
    assert "ADE_val_00000001" in err and "no prediction" in err
    assert "extra_prediction" in err and "no ground truth" in err
    assert "--allow-missing" in err and out == ""

    code, out, err = run(["evaluate", pred_dir, gt_dir, "--allow-missing", "--json", tmp_path / "r.json"], capsys)
    assert code == 0, err
    assert "ADE_val_00000001" in err  # still warned about
    doc = json.loads((tmp_path / "r.json").read_text())
    kept = {n: g for n, g in gts.items() if n != "ADE_val_00000001"}
    assert np.array_equal(doc["confusion_matrix"], expected_matrix(preds, kept))
    assert doc["environment"]["files"] == 4
    assert doc["environment"]["missing_predictions"] == 1 and doc["environment"]["missing_ground_truth"] == 1


def test_allow_missing_quiet_prints_no_warning(dataset, capsys):
    pred_dir, gt_dir, _, _ = dataset
    (pred_dir / "ADE_val_00000001.png").unlink()
    code, _, err = run(["evaluate", pred_dir, gt_dir, "--allow-missing", "--quiet"], capsys)
    assert code == 0 and err == ""


def test_no_pairs_at_all(tmp_path, capsys):
    (tmp_path / "p").mkdir()
    (tmp_path / "g").mkdir()
    code, _, err = run(["evaluate", tmp_path / "p", tmp_path / "g"], capsys)
    assert code == 1 and "no PNG pairs" in err


def test_size_mismatch_names_the_file_and_resize_fixes_it(tmp_path, capsys):
    rng = np.random.default_rng(3)
    gt = block_map(rng, (20, 30), 0, 9, block=2)
    small_pred = block_map(rng, (10, 15), 1, 9, block=1)
    write_folder(tmp_path / "p", {"a": small_pred})
    write_folder(tmp_path / "g", {"a": gt})
    code, _, err = run(["evaluate", tmp_path / "p", tmp_path / "g"], capsys)
    assert code == 1
    assert str(tmp_path / "p" / "a.png") in err and "15x10" in err and "30x20" in err
    assert "--resize nearest" in err

    code, _, err = run(["evaluate", tmp_path / "p", tmp_path / "g", "--resize", "nearest",
                        "--json", tmp_path / "r.json"], capsys)
    assert code == 0, err
    # Nearest-neighbour upscaling by exactly 2 repeats every pixel twice in each direction.
    upscaled = np.repeat(np.repeat(small_pred, 2, axis=0), 2, axis=1)
    doc = json.loads((tmp_path / "r.json").read_text())
    assert np.array_equal(doc["confusion_matrix"], expected_matrix({"a": upscaled}, {"a": gt}))


def _one_pair(tmp_path, rng=None):
    rng = rng or np.random.default_rng(4)
    gt = block_map(rng, (12, 16), 1, 9, block=4)
    pred = block_map(rng, (12, 16), 1, 9, block=4)
    write_folder(tmp_path / "p", {"a": pred, "b": pred})
    write_folder(tmp_path / "g", {"a": gt, "b": gt})
    return tmp_path / "p", tmp_path / "g", pred, gt


def test_multichannel_image_is_an_error_naming_the_file(tmp_path, capsys):
    p, g, pred, _ = _one_pair(tmp_path)
    Image.fromarray(np.stack([pred] * 3, axis=-1)).save(p / "b.png")
    code, _, err = run(["evaluate", p, g], capsys)
    assert code == 1
    assert str(p / "b.png") in err and "3 channels" in err and "RGB" in err


def test_float_image_is_an_error_naming_the_file(tmp_path, capsys):
    p, g, pred, _ = _one_pair(tmp_path)
    # A TIFF of 32-bit floats under a .png name: Pillow goes by content, the labels are not integers.
    Image.fromarray(pred.astype(np.float32)).save(g / "a.png", format="TIFF")
    code, _, err = run(["evaluate", p, g], capsys)
    assert code == 1
    assert str(g / "a.png") in err and "floating-point" in err


def test_unreadable_file_is_an_error_naming_it(tmp_path, capsys):
    p, g, _, _ = _one_pair(tmp_path)
    (p / "b.png").write_bytes(b"this is not a PNG file at all")
    code, _, err = run(["evaluate", p, g], capsys)
    assert code == 1
    assert str(p / "b.png") in err and "cannot read image" in err


def test_truncated_png_is_an_error_naming_it(tmp_path, capsys):
    p, g, _, _ = _one_pair(tmp_path)
    big = np.random.default_rng(0).integers(1, 150, size=(64, 64), dtype=np.uint8)  # incompressible
    Image.fromarray(big).save(g / "a.png")
    Image.fromarray(big).save(p / "a.png")
    data = (g / "a.png").read_bytes()
    (g / "a.png").write_bytes(data[: len(data) // 2])
    code, _, err = run(["evaluate", p, g], capsys)
    assert code == 1
    assert str(g / "a.png") in err and "cannot" in err


def test_ground_truth_label_out_of_range_names_file_and_value(tmp_path, capsys):
    p, g, _, gt = _one_pair(tmp_path)
    bad = gt.copy()
    bad[3, 5] = 200
    Image.fromarray(bad).save(g / "b.png")
    code, _, err = run(["evaluate", p, g], capsys)
    assert code == 1
    assert str(g / "b.png") in err and "200" in err and "1 pixel" in err


@pytest.mark.parametrize("value, hint", [(0, "--pred-zero-based"), (151, "")])
def test_prediction_label_out_of_range_names_file_and_value(tmp_path, capsys, value, hint):
    p, g, pred, _ = _one_pair(tmp_path)
    bad = pred.copy()
    bad[0, :2] = value
    Image.fromarray(bad).save(p / "a.png")
    code, _, err = run(["evaluate", p, g, "--threads", 2], capsys)
    assert code == 1
    assert str(p / "a.png") in err and f"e.g. {value}" in err and "2 evaluated pixel" in err
    assert hint in err


def test_zero_based_prediction_of_k_is_out_of_range(tmp_path, capsys):
    p, g, pred, _ = _one_pair(tmp_path)
    Image.fromarray(np.full_like(pred, 150)).save(p / "a.png")
    code, _, err = run(["evaluate", p, g, "--pred-zero-based"], capsys)
    assert code == 1 and "e.g. 150" in err and str(p / "a.png") in err


def test_prediction_at_unevaluated_pixels_is_not_checked(tmp_path, capsys):
    gt = np.zeros((4, 4), np.uint8)
    gt[0, 0] = 7
    pred = np.zeros((4, 4), np.uint8)  # 0 is no 1-based class, but only pixel (0, 0) is evaluated
    pred[0, 0] = 7
    write_folder(tmp_path / "p", {"x": pred})
    write_folder(tmp_path / "g", {"x": gt})
    code, _, err = run(["evaluate", tmp_path / "p", tmp_path / "g", "--json", tmp_path / "r.json"], capsys)
    assert code == 0, err
    assert json.loads((tmp_path / "r.json").read_text())["metrics"]["aacc"] == 1.0


def test_first_bad_file_in_order_is_reported(tmp_path, capsys):
    rng = np.random.default_rng(6)
    preds, gts = make_dataset(rng, count=12, shape=(16, 16))
    preds["ADE_val_00000004"][0, 0] = 160
    preds["ADE_val_00000009"][0, 0] = 170
    write_folder(tmp_path / "p", preds)
    write_folder(tmp_path / "g", gts)
    gts["ADE_val_00000004"][0, 0] = 1  # make sure the bad pixel is evaluated
    Image.fromarray(gts["ADE_val_00000004"]).save(tmp_path / "g" / "ADE_val_00000004.png")
    for _ in range(3):
        code, _, err = run(["evaluate", tmp_path / "p", tmp_path / "g", "--threads", 3], capsys)
        assert code == 1
        assert "ADE_val_00000004.png" in err and "ADE_val_00000009" not in err


def test_failed_run_leaves_existing_outputs_untouched(tmp_path, capsys):
    p, g, pred, _ = _one_pair(tmp_path)
    out = tmp_path / "r.json"
    out.write_text("previous result\n")
    Image.fromarray(np.full_like(pred, 151)).save(p / "b.png")
    code, _, _ = run(["evaluate", p, g, "--json", out], capsys)
    assert code == 1
    assert out.read_text() == "previous result\n"


def test_atomic_write_never_leaves_half_a_file(tmp_path):
    from ade20k_metrics.io.report import atomic_write

    target = tmp_path / "report.json"
    target.write_text("old")

    def fails_halfway(f):
        f.write(b"{\"half\": ")
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        atomic_write(target, fails_halfway)
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["report.json"]
    atomic_write(target, lambda f: f.write(b"new"))
    assert target.read_text() == "new"
    assert os.listdir(tmp_path) == ["report.json"]


# -- usage errors -----------------------------------------------------------------------------------

def test_usage_errors_exit_2(dataset, tmp_path, capsys):
    pred_dir, gt_dir, _, _ = dataset
    assert run(["evaluate", tmp_path / "nowhere", gt_dir], capsys)[0] == 2
    code, _, err = run(["evaluate", pred_dir, gt_dir, "--json", tmp_path / "no" / "such" / "dir.json"], capsys)
    assert code == 2 and "does not exist" in err
    for argv in (["evaluate", pred_dir, gt_dir, "--threads", "0"],
                 ["evaluate", pred_dir, gt_dir, "--convention", "nonsense"],
                 ["evaluate", pred_dir],
                 ["leaderboard", "--miou", "140"],
                 ["nosuchcommand"]):
        with pytest.raises(SystemExit) as exc:
            main([str(a) for a in argv])
        assert exc.value.code == 2
    capsys.readouterr()


def test_progress_bar_only_on_a_terminal(dataset, capsys, monkeypatch):
    pred_dir, gt_dir, _, _ = dataset

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setitem(sys.modules, "tqdm", None)  # the built-in bar
    fake = Terminal()
    monkeypatch.setattr(sys, "stderr", fake)
    assert main(["evaluate", str(pred_dir), str(gt_dir)]) == 0
    assert "evaluate: 5/5 pairs" in fake.getvalue()

    quiet = Terminal()
    monkeypatch.setattr(sys, "stderr", quiet)
    assert main(["evaluate", str(pred_dir), str(gt_dir), "--quiet"]) == 0
    assert quiet.getvalue() == ""
    capsys.readouterr()


# -- streaming --------------------------------------------------------------------------------------

def test_decoding_runs_a_bounded_number_of_pairs_ahead(monkeypatch):
    from ade20k_metrics.io import label_files as ev

    started = []

    def fake_load(pair, label_format):
        started.append(pair.key)
        return np.zeros((2, 2), np.uint8), np.zeros((2, 2), np.uint8)

    monkeypatch.setattr(ev, "load_pair", fake_load)
    pairs = [ev.LabelPair(f"{i:03d}", None, None) for i in range(100)]
    stream = ev.iter_decoded(pairs, ev.LabelFormat(), workers=2, max_in_flight=4)
    got = [next(stream)[0].key for _ in range(3)]
    assert got == ["000", "001", "002"]
    assert len(started) <= 3 + 4
    assert [p.key for p, _, _ in stream] == [f"{i:03d}" for i in range(3, 100)]
    assert len(started) == 100


# -- show -------------------------------------------------------------------------------------------

def test_show_draws_palette_colours_and_errors(tmp_path, capsys):
    gt = np.zeros((10, 12), np.uint8)
    gt[:, :6] = 1    # wall
    gt[:, 6:] = 3    # sky
    gt[0, 0] = 0     # other: not evaluated
    pred = gt.copy()
    pred[0, 0] = 1
    pred[5:, 6:] = 5  # wrong: tree instead of sky
    Image.fromarray(pred).save(tmp_path / "p.png")
    Image.fromarray(gt).save(tmp_path / "g.png")
    code, _, err = run(["show", tmp_path / "p.png", tmp_path / "g.png", "-o", tmp_path / "out.png"], capsys)
    assert code == 0, err
    with Image.open(tmp_path / "out.png") as im:
        picture = np.asarray(im.convert("RGB"))
    palette = ade20k.classes().palette
    header, gap, w = picture.shape[0] - 10, 6, 12
    assert picture.shape[1] == 3 * w + 2 * gap
    gt_panel = picture[header:, :w]
    pred_panel = picture[header:, w + gap: 2 * w + gap]
    err_panel = picture[header:, 2 * (w + gap):]
    assert tuple(gt_panel[5, 2]) == tuple(palette[0]) and tuple(gt_panel[5, 9]) == tuple(palette[2])
    assert tuple(gt_panel[0, 0]) == (0, 0, 0)
    assert tuple(pred_panel[7, 9]) == tuple(palette[4])
    assert tuple(err_panel[7, 9]) == (255, 0, 0)
    assert tuple(err_panel[2, 9]) != (255, 0, 0) and tuple(err_panel[0, 0]) != (255, 0, 0)


def _show_with_photo(tmp_path, capsys, photo_shape):
    """`show` on an 8x8 prediction and ground truth (class 2) and a black photo of photo_shape."""
    gt = np.full((8, 8), 2, np.uint8)
    Image.fromarray(gt).save(tmp_path / "g.png")
    Image.fromarray(gt).save(tmp_path / "p.png")
    Image.fromarray(np.zeros(photo_shape, np.uint8)).save(tmp_path / "photo.png")
    return run(["show", tmp_path / "p.png", tmp_path / "g.png", tmp_path / "photo.png",
                "-o", tmp_path / "o.png"], capsys)


def test_show_with_photo_and_bad_label(tmp_path, capsys):
    code, _, err = _show_with_photo(tmp_path, capsys, (8, 8, 3))
    assert code == 0, err
    with Image.open(tmp_path / "o.png") as im:
        assert im.width == 4 * 8 + 3 * 6
    Image.fromarray(np.full((8, 8), 222, np.uint8)).save(tmp_path / "p.png")
    code, _, err = run(["show", tmp_path / "p.png", tmp_path / "g.png", "-o", tmp_path / "o2.png"], capsys)
    assert code == 1 and "222" in err and str(tmp_path / "p.png") in err
    assert not (tmp_path / "o2.png").exists()


# -- leaderboard and bench ----------------------------------------------------------------------------

def published_mious():
    from importlib import resources

    with resources.files("ade20k_metrics.datasets").joinpath("data", "ade20k", "leaderboard.csv").open() as f:
        return [float(r["miou"]) for r in csv.DictReader(f)]


def test_leaderboard_inserts_a_result_where_it_ranks(tmp_path, capsys):
    mious = published_mious()
    code, out, err = run(["leaderboard"], capsys)
    assert code == 0, err
    assert len([line for line in out.splitlines() if line[:4].strip().isdigit()]) == len(mious)

    code, out, err = run(["leaderboard", "--miou", 50.0, "--params", 30, "--name", "mine"], capsys)
    assert code == 0, err
    expected_rank = sum(m >= 50.0 for m in mious) + 1
    mine = [line for line in out.splitlines() if "<==" in line]
    assert len(mine) == 1 and mine[0].split()[0] == str(expected_rank) and "mine" in mine[0]
    # 30M parameters at 50.0: every published model that small scores lower (data: smallest is 62M)
    assert "on the efficiency frontier" in out


def test_leaderboard_plot_and_usage(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    code, _, err = run(["leaderboard", "--miou", 55, "--params", 100, "--plot", tmp_path / "b.png"], capsys)
    assert code == 0, err
    with Image.open(tmp_path / "b.png") as im:
        assert im.format == "PNG"
    assert run(["leaderboard", "--params", 100], capsys)[0] == 2


def test_pareto_frontier_by_hand():
    from ade20k_metrics.cli.leaderboard import Entry, pareto_frontier

    def entry(name, miou, params):
        return Entry(name, "", miou, "CNN", params, 2020)

    entries = [entry("a", 40, 10), entry("b", 45, 20), entry("c", 42, 30), entry("d", 50, 100),
               entry("e", 50, 200), entry("f", 60, None)]
    assert [e.model for e in pareto_frontier(entries)] == ["a", "b", "d"]


def test_bench_passes_every_argument_through(monkeypatch, capsys):
    seen = []
    fake = types.ModuleType("ade20k_metrics.cli.benchmark")
    fake.main = lambda argv: seen.append(argv) or 7
    monkeypatch.setitem(sys.modules, "ade20k_metrics.cli.benchmark", fake)
    assert main(["bench", "--quick", "-n", "3", "extra"]) == 7
    assert seen == [["--quick", "-n", "3", "extra"]]
    assert main(["bench"]) == 7 and seen[-1] == []


def test_bench_without_the_benchmark_module(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ade20k_metrics.cli.benchmark", None)
    code, _, err = run(["bench"], capsys)
    assert code == 1 and "not available" in err


def test_demo_still_works(capsys):
    code, out, _ = run(["demo", "--threads", "1"], capsys)
    assert code == 0 and "mIoU" in out and "evaluated pixels" in out


def test_tqdm_is_used_when_installed(dataset, capsys, monkeypatch):
    pred_dir, gt_dir, _, _ = dataset
    calls = []

    class FakeBar:
        def __init__(self, **kwargs):
            calls.append(("init", kwargs["total"], kwargs["file"]))

        def update(self, n):
            calls.append(("update", n))

        def close(self):
            calls.append(("close",))

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    fake_module = types.ModuleType("tqdm")
    fake_module.tqdm = FakeBar
    monkeypatch.setitem(sys.modules, "tqdm", fake_module)
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(["evaluate", str(pred_dir), str(gt_dir)]) == 0
    assert calls[0] == ("init", 5, terminal)
    assert sum(n for kind, *n in calls if kind == "update" for n in n) == 5
    assert calls[-1] == ("close",)
    capsys.readouterr()


def test_show_photo_of_another_size_is_an_error(tmp_path, capsys):
    code, _, err = _show_with_photo(tmp_path, capsys, (9, 8, 3))
    assert code == 1 and str(tmp_path / "photo.png") in err and "8x9" in err
    assert not (tmp_path / "o.png").exists()


def test_installed_command_exit_codes(dataset, tmp_path):
    import subprocess

    pred_dir, gt_dir, _, _ = dataset

    def status(*argv):
        done = subprocess.run([sys.executable, "-m", "ade20k_metrics", *map(str, argv)],
                              capture_output=True, text=True, timeout=120)
        return done.returncode, done.stderr

    assert status("evaluate", pred_dir, gt_dir, "--quiet")[0] == 0
    code, err = status("evaluate", pred_dir, gt_dir, "--threads", "zero")
    assert code == 2 and "--threads" in err
    (pred_dir / "ADE_val_00000002.png").unlink()
    code, err = status("evaluate", pred_dir, gt_dir)
    assert code == 1 and "ADE_val_00000002" in err
