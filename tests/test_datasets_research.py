"""Research outputs with --dataset (issue 15 x issue 16): evaluate --per-image / --ci and compare, every dataset.

Each test writes two images in the dataset's official format (its folder layout, file names, ground-truth
values and prediction values, Cityscapes' instance files included) and holds the research outputs against
what the already-verified official reproduction (tests/test_datasets_official.py) gives for the same files:

- the dataset-level numbers with --per-image and --ci are exactly those without (Cityscapes' official
  averages, COCO-Stuff's evaluate_performance figures);
- each per-image CSV row is the official evaluation of that image alone (per-class IoU of the classes in
  its ground truth; 0 for a class only predicted; empty for a class in neither map), with the dataset's
  class names as column names;
- with two images the bootstrap resamples are {a, a}, {a, b} and {b, b}, each at least a quarter of the
  time, so the 2.5% and 97.5% quantiles of 1000 resamples are the smallest and largest of the three
  evaluations "a alone", "a and b", "b alone";
- compare against a perfect prediction: mIoU(B) = 1, mIoU(A) = evaluate's official figure, per-class rows
  named by the dataset's classes.
"""
from __future__ import annotations

import contextlib
import csv
import io
import json
import math

import numpy as np
import pytest

import ade20k_metrics as am
from ade20k_metrics import cli

Image = pytest.importorskip("PIL.Image")

NAMES = am.datasets.names()
SHAPE = (24, 40)


def _run(*argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def _json(tmp_path, *argv) -> dict:
    target = tmp_path / "out.json"
    code, _, err = _run(*argv, "--quiet", "--json", target)
    assert code == 0, err
    return json.loads(target.read_text())


# -- the official files of each dataset -------------------------------------------------------------------

def _gt_values(ds) -> list[int]:
    """Every value the dataset's official ground truth holds (classes, ids without a class, ignore)."""
    if ds.space == "raw":
        values = [lab.id for lab in ds.raw_labels if 0 <= lab.id < ds.count_classes and lab.id not in ds.gt_absent_ids]
    else:
        values = list(range(ds.num_classes + 1)) if ds.reduce_zero_label else list(range(ds.num_classes))
    if ds.ignore_index is not None and ds.ignore_index not in values:
        values.append(ds.ignore_index)
    return values


def _pred_values(ds) -> list[int]:
    """Every value of the official prediction format (raw datasets: ids without a class too)."""
    if ds.space == "raw":
        return list(range(ds.count_classes))
    return list(range(1, ds.num_classes + 1)) if ds.reduce_zero_label else list(range(ds.num_classes))


def _perfect(ds, gt: np.ndarray) -> np.ndarray:
    """A prediction equal to the ground truth wherever it is evaluated, in the official prediction format."""
    if ds.space == "raw":
        return np.where(gt < ds.count_classes, gt, 0)
    if ds.reduce_zero_label:
        return np.where(gt == 0, 1, gt)
    return np.where(gt == ds.ignore_index, 0, gt)


def _save(array: np.ndarray, path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    dtype = np.uint16 if int(array.max()) > 255 else np.uint8
    Image.fromarray(array.astype(dtype)).save(path)


class Files:
    """One dataset's ground-truth folder and prediction folders in the official layout."""

    def __init__(self, root, ds):
        self.root, self.ds = root, ds
        self.gt_dir = root / "gt"

    def stem(self, i: int) -> str:
        return f"frankfurt_{i:06d}_{7 * i:06d}" if self.ds.name == "cityscapes" else f"img_{i:04d}"

    def write_gt(self, i: int, gt: np.ndarray, gt_dir=None) -> None:
        ds, gt_dir = self.ds, gt_dir or self.gt_dir
        stem = self.stem(i)
        if ds.name == "cityscapes":
            _save(gt, gt_dir / "frankfurt" / f"{stem}{ds.gt_pattern}")
            with_instances = [lab.id for lab in ds.raw_labels if lab.has_instances and lab.id >= 0]
            instances = np.where(np.isin(gt, with_instances), gt * 1000 + (np.arange(gt.size).reshape(gt.shape) % 2), gt)
            Image.fromarray(instances.astype(np.uint16)).save(gt_dir / "frankfurt" / f"{stem}{ds.instance_pattern}")
        else:
            _save(gt, gt_dir / f"{stem}{ds.gt_suffixes[0]}")

    def write_pred(self, folder: str, i: int, pred: np.ndarray):
        name = f"{self.stem(i)}_leftImg8bit.png" if self.ds.name == "cityscapes" else f"{self.stem(i)}.png"
        _save(pred, self.root / folder / name)
        return self.root / folder


def _blocks(rng, values, block=8) -> np.ndarray:
    coarse = rng.choice(np.asarray(values), size=(SHAPE[0] // block + 1, SHAPE[1] // block + 1))
    return np.kron(coarse, np.ones((block, block), np.int64))[: SHAPE[0], : SHAPE[1]]


def _dataset_files(tmp_path, name, seed=0):
    """Two images a (noisy prediction) and b (less noisy) for dataset ``name``; also each alone."""
    ds = am.datasets.get(name)
    rng = np.random.default_rng(seed)
    files = Files(tmp_path / "both", ds)
    gts, preds = [], []
    for i, share in enumerate((0.5, 0.15)):
        # a few values, so that classes recur between the two images and within each
        gt = _blocks(rng, rng.choice(np.asarray(_gt_values(ds)), size=6, replace=False))
        pred = _perfect(ds, gt)
        flip = rng.random(SHAPE) < share
        pred[flip] = rng.choice(np.asarray(_pred_values(ds)), size=int(flip.sum()))
        files.write_gt(i, gt)
        files.write_pred("pred", i, pred)
        files.write_pred("perfect", i, _perfect(ds, gt))
        gts.append(gt)
        preds.append(pred)
    alone = []
    for i in range(2):
        single = Files(tmp_path / f"alone{i}", ds)
        single.write_gt(i, gts[i])
        single.write_pred("pred", i, preds[i])
        alone.append(single)
    return ds, files, alone


def _read_csv(path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# -- evaluate --dataset NAME --per-image --ci ---------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_per_image_and_ci_with_every_dataset(tmp_path, name):
    ds, files, alone = _dataset_files(tmp_path, name)
    pred_dir, gt_dir = files.root / "pred", files.gt_dir
    plain = _json(tmp_path, "evaluate", pred_dir, gt_dir, "--dataset", name)
    research = _json(tmp_path, "evaluate", pred_dir, gt_dir, "--dataset", name, "--per-image",
                     tmp_path / "pi.csv", "--ci", "0.95", "--seed", "0")
    # The dataset-level (official) numbers do not change with per-image results kept.
    ci = research["metrics"].pop("miou_ci")
    assert research["metrics"] == plain["metrics"]
    assert research["per_class"] == plain["per_class"]
    assert research["confusion_matrix"] == plain["confusion_matrix"]

    singles = [_json(tmp_path, "evaluate", a.root / "pred", a.gt_dir, "--dataset", name) for a in alone]
    rows = _read_csv(tmp_path / "pi.csv")
    assert list(rows[0].keys()) == ["image", "pixels", "miou", "aacc", *[f"iou_{n}" for n in ds.class_names]]
    assert [r["image"] for r in rows] == [
        f"{files.stem(i)}" if name == "cityscapes" else files.stem(i) for i in range(2)]
    for row, single in zip(rows, singles):
        expected = []
        for cls in single["per_class"]:
            cell = row[f"iou_{ds.class_names[cls['id']]}"]
            if cls["gt_pixels"] > 0:  # the official evaluation of the image alone
                assert float(cell) == pytest.approx(cls["iou"], rel=1e-12, abs=0), cls
                expected.append(cls["iou"])
            elif cls["pred_pixels"] > 0:
                assert float(cell) == 0.0, cls
                expected.append(0.0)
            else:
                assert cell == "", cls
        assert int(row["pixels"]) == sum(c["gt_pixels"] for c in single["per_class"])
        assert float(row["miou"]) == pytest.approx(sum(expected) / len(expected), rel=1e-12)
    # Resamples of two images: {a, a}, {a, b}, {b, b}; the quantiles are the extremes of the three.
    candidates = [singles[0]["metrics"]["miou"], plain["metrics"]["miou"], singles[1]["metrics"]["miou"]]
    assert ci[0] == pytest.approx(min(candidates), rel=1e-12)
    assert ci[1] == pytest.approx(max(candidates), rel=1e-12)
    assert research["ci"]["images"] == 2


def test_cityscapes_official_numbers_unchanged_by_per_image(tmp_path):
    # iIoU and the category scores come from the instance files: still the official figures.
    _, files, _ = _dataset_files(tmp_path, "cityscapes", seed=3)
    plain = _json(tmp_path, "evaluate", files.root / "pred", files.gt_dir, "--dataset", "cityscapes")
    research = _json(tmp_path, "evaluate", files.root / "pred", files.gt_dir, "--dataset", "cityscapes", "--ci",
                     "0.9", "--per-image", tmp_path / "x.csv")
    for key in ("miou", "iiou", "category_miou", "category_iiou"):
        assert research["metrics"][key] == plain["metrics"][key]
        assert plain["metrics"][key] is not None and math.isfinite(plain["metrics"][key])


# -- compare --dataset NAME ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_compare_with_every_dataset(tmp_path, name):
    ds, files, _ = _dataset_files(tmp_path, name, seed=1)
    pred_dir, perfect_dir, gt_dir = files.root / "pred", files.root / "perfect", files.gt_dir
    official = _json(tmp_path, "evaluate", pred_dir, gt_dir, "--dataset", name)
    doc = _json(tmp_path, "compare", pred_dir, perfect_dir, gt_dir, "--dataset", name, "--bootstrap", "200",
                "--permutations", "200", "--per-image", tmp_path / "c.csv")
    assert doc["miou_a"] == official["metrics"]["miou"]
    assert doc["miou_b"] == pytest.approx(1.0, rel=1e-12)
    assert doc["delta"] == pytest.approx(1.0 - official["metrics"]["miou"], rel=1e-12)
    assert doc["convention"] == ds.convention
    assert doc["images"] == 2 and doc["images_better"] == 2
    assert {c["name"] for c in doc["per_class"]} == set(ds.class_names)
    by_name = {c["name"]: c for c in doc["per_class"]}
    for cls in official["per_class"]:
        row = by_name[ds.class_names[cls["id"]]]
        assert row["iou_a"] == cls["iou"]  # the official per-class IoU (None where the evaluation has none)
    assert doc["environment"]["dataset"] == name
    rows = _read_csv(tmp_path / "c.csv")
    assert [float(r["miou_b"]) for r in rows] == [1.0, 1.0]


def test_compare_dataset_refuses_plain_format_options(tmp_path):
    _, files, _ = _dataset_files(tmp_path, "pascal-voc")
    code, _, err = _run("compare", files.root / "pred", files.root / "perfect", files.gt_dir, "--dataset",
                        "pascal-voc", "--num-classes", "21")
    assert code == 2 and "--num-classes" in err


# -- the leaderboard's sources (issue 16 item 5) -------------------------------------------------------------

def _leaderboard_rows():
    from importlib import resources

    with resources.files("ade20k_metrics.datasets").joinpath("data", "ade20k", "leaderboard.csv").open() as f:
        return list(csv.DictReader(f))


def test_every_leaderboard_row_says_whether_its_figure_was_confirmed():
    rows = _leaderboard_rows()
    for r in rows:
        checked = r["checked"].strip()
        assert checked, r["model"]
        if r["status"] == "confirmed":  # names where the figure was read, and the figure is there
            assert not checked.startswith("not confirmed"), r["model"]
            assert "arXiv:" in checked or "README" in checked, r["model"]
        else:
            assert checked.startswith("not confirmed"), r["model"]
    # The figures re-read in their sources (abstracts quoted in the `checked` column).
    confirmed = {r["model"]: float(r["miou"]) for r in rows if r["status"] == "confirmed"}
    assert confirmed == {"InternImage-H": 62.9, "ViT-CoMer-L": 62.1, "ViT-Adapter-L (BEiT)": 60.5,
                         "SeMask-L (Mask2Former)": 58.2, "Mask2Former (Swin-L)": 57.7, "Swin-L (UPerNet)": 53.5}


def test_leaderboard_sources_show_what_each_figure_was_checked_against():
    code, out, err = _run("leaderboard", "--sources")
    assert code == 0, err
    assert out.count("checked: ") == len(_leaderboard_rows())
    assert "checked: abstract of arXiv:2103.14030" in out


# -- an interval that misses its own estimate is flagged (issue 16, found trying it as a new user) -------------

def _small_noisy_set(root, images=30, seed=0):
    """ADE20K-format files: ground truth 0..150 in 16-pixel blocks, predictions 1..150 with a share of noise."""
    rng = np.random.default_rng(seed)
    for folder in ("gt", "pred"):
        (root / folder).mkdir(parents=True)
    for i in range(images):
        coarse = rng.integers(0, 151, size=(7, 9))
        gt = np.kron(coarse, np.ones((16, 16), np.int64))[:96, :128]
        pred = np.where(gt == 0, 1, gt)
        flip = rng.random(gt.shape) < 0.3
        pred[flip] = rng.integers(1, 151, size=int(flip.sum()))
        Image.fromarray(gt.astype(np.uint8)).save(root / "gt" / f"{i:03d}.png")
        Image.fromarray(pred.astype(np.uint8)).save(root / "pred" / f"{i:03d}.png")
    return root / "pred", root / "gt"


def test_estimate_outside_its_interval_is_flagged(tmp_path):
    # 30 images, each class in the ground truth of ~10: a class's true positives vary a lot between resamples
    # while its noise false positives do not, and IoU = TP / (TP + FP + FN) is concave in TP, so the
    # resampled mIoUs sit below the estimate (the percentile interval's small-sample bias).
    pred, gt = _small_noisy_set(tmp_path / "set")
    target = tmp_path / "e.json"
    code, out, err = _run("evaluate", pred, gt, "--ci", "0.95", "--seed", "0", "--quiet", "--json", target)
    assert code == 0, err
    doc = json.loads(target.read_text())
    miou, (low, high) = doc["metrics"]["miou"], doc["metrics"]["miou_ci"]
    assert not (low <= miou <= high)  # this data set is such a case
    assert doc["ci"]["estimate_inside"] is False
    assert "lies outside its percentile interval" in out
    code, out, err = _run("compare", pred, pred, gt, "--quiet", "--bootstrap", "300", "--permutations", "50",
                          "--markdown", tmp_path / "c.md")
    assert code == 0, err
    assert "lies outside its percentile interval" in out and "(A, B)" in out  # B - A = 0 is inside [0, 0]
    assert "lies outside its percentile interval" in (tmp_path / "c.md").read_text()


def test_estimate_inside_its_interval_prints_no_note(tmp_path, capsys):
    # Two images: the resamples' extremes bracket the pooled estimate (see the per-image test above).
    _, files, _ = _dataset_files(tmp_path, "pascal-voc")
    target = tmp_path / "e.json"
    code, out, err = _run("evaluate", files.root / "pred", files.gt_dir, "--dataset", "pascal-voc", "--ci", "0.95",
                          "--quiet", "--json", target)
    assert code == 0, err
    assert json.loads(target.read_text())["ci"]["estimate_inside"] is True
    assert "outside" not in out


# -- show on small images: the title and panel names stay inside the picture (found on 96 x 128 maps) ---------

def test_show_title_and_panel_names_wrap_inside_small_panels():
    from PIL import ImageDraw

    from ade20k_metrics.io import figures

    rng = np.random.default_rng(0)
    small = [(name, rng.integers(0, 256, size=(30, 40, 3), dtype=np.uint8))
             for name in ("ground truth", "prediction", "errors (red): 28.9% of evaluated pixels")]
    title = "ADE_val_00000001.png against ADE_val_00000001.png: 71.1% of evaluated pixels right"
    out = figures.labelled_panels(small, title=title, legend=[("wall", (120, 120, 120))])
    assert out.shape[1] == 3 * 40 + 2 * 6  # the panels one to one, 6 px apart
    for i, (_, rgb) in enumerate(small):
        assert np.array_equal(out[-30:, i * 46: i * 46 + 40], rgb)
    # The title wraps: its lines are each narrower than the picture, and together they hold all of it.
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    lines = figures._wrap(probe, title, figures._font(16), out.shape[1] - 8)
    assert len(lines) > 1 and "".join(lines).replace(" ", "") == title.replace(" ", "")
    assert all(figures._text_width(probe, line, figures._font(16)) <= out.shape[1] - 8 for line in lines)
    # Nothing is drawn past the right edge: the last column of the header is white (text would be black).
    header = out[: out.shape[0] - 30]
    assert (header[:, -2:] == 255).all()
    # With room for every name, the names sit over their panels and the picture keeps its one-to-one layout.
    big = [("ground truth", rng.integers(0, 256, size=(300, 400, 3), dtype=np.uint8))]
    out = figures.labelled_panels(big, title="short", legend=[])
    assert out.shape[1] == 400 and np.array_equal(out[-300:], big[0][1])


def test_leaderboard_plot_draws_doubtful_figures_hollow(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    from ade20k_metrics.cli import leaderboard
    from ade20k_metrics.io import figures

    drawn = {}

    def keep(fig, path, outputs=None):
        ax = fig.axes[0]
        drawn.update({c.get_label(): c.get_offsets().tolist() for c in ax.collections})

    monkeypatch.setattr(figures, "save", keep)
    leaderboard.plot(tmp_path / "l.png", leaderboard.published())
    rows = [r for r in _leaderboard_rows() if r["params_millions"].strip()]
    doubtful = sorted([float(r["params_millions"]), float(r["miou"])] for r in rows if r["status"] == "doubtful")
    assert sorted(drawn["source doubtful (hollow)"]) == doubtful
    filled = sorted(p for label, points in drawn.items() if label in ("CNN", "Hybrid", "Transformer") for p in points)
    assert filled == sorted([float(r["params_millions"]), float(r["miou"])] for r in rows if r["status"] != "doubtful")
