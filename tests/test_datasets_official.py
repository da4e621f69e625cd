"""`evaluate PRED GT --dataset NAME` on files written here in each benchmark's official format, against that
benchmark's official evaluation: cityscapesScripts itself where it is installed, a hand-worked Cityscapes
example that needs nothing, and for the others the official procedure restated here (VOCevalseg.m, COCO-Stuff's
evaluate_performance.py, detectron2's SemSegEvaluator, mmseg's IoUMetric)."""
import contextlib
import glob
import io
import json
import warnings

import numpy as np
import pytest
from PIL import Image

import ade20k_metrics as am
from ade20k_metrics import cli


def _run(*argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def _evaluate_json(pred_dir, gt_dir, tmp_path, *options) -> dict:
    target = tmp_path / "out.json"
    code, out, err = _run("evaluate", pred_dir, gt_dir, "--quiet", "--json", target, *options)
    assert code == 0, err
    return json.loads(target.read_text())


def _blocks(rng, shape, values, block=8) -> np.ndarray:
    coarse = rng.choice(np.asarray(values), size=(shape[0] // block + 1, shape[1] // block + 1))
    return np.kron(coarse, np.ones((block, block), np.int64))[: shape[0], : shape[1]]


def _noisy(rng, labels, values, share=0.25) -> np.ndarray:
    out = labels.copy()
    flip = rng.random(labels.shape) < share
    out[flip] = rng.choice(np.asarray(values), size=int(flip.sum()))
    return out


# -- Cityscapes ------------------------------------------------------------------------------------------

def _write_cityscapes(root, rng, images=4, shape=(48, 96), train_ids=False):
    ds = am.datasets.get("cityscapes")
    label_ids = [lab.id for lab in ds.raw_labels if lab.id >= 0]
    with_instances = [lab.id for lab in ds.raw_labels if lab.has_instances and lab.id >= 0]
    gt_dir, pred_dir = root / "gtFine" / "val", root / "results"
    for i in range(images):
        city = ("frankfurt", "lindau", "munster")[i % 3]
        stem = f"{city}_{i:06d}_{19 * i:06d}"
        gt = _blocks(rng, shape, label_ids)
        instances = gt.copy()
        inst = np.isin(gt, with_instances)
        # instance ids id * 1000 + n (n from 0: 24000 is an instance too, as instanceIds > 1000 counts it),
        # some regions left as the label id alone (a "group" region, no instance)
        numbers = rng.integers(-1, 4, size=gt.shape)
        instances[inst & (numbers >= 0)] = gt[inst & (numbers >= 0)] * 1000 + numbers[inst & (numbers >= 0)]
        pred = _noisy(rng, gt, label_ids, 0.3)
        (gt_dir / city).mkdir(parents=True, exist_ok=True)
        (pred_dir / city).mkdir(parents=True, exist_ok=True)
        Image.fromarray(gt.astype(np.uint8)).save(gt_dir / city / f"{stem}_gtFine_labelIds.png")
        Image.fromarray(instances.astype(np.uint16)).save(gt_dir / city / f"{stem}_gtFine_instanceIds.png")
        Image.fromarray(np.zeros((*shape, 3), np.uint8)).save(gt_dir / city / f"{stem}_gtFine_color.png")
        if train_ids:
            pred = np.where(ds.gt_to_class[pred] >= 0, ds.gt_to_class[pred], 255)
        Image.fromarray(pred.astype(np.uint8)).save(pred_dir / city / f"{stem}_leftImg8bit.png")
    return gt_dir, pred_dir


@pytest.fixture
def cityscapes_eval(monkeypatch):
    evaluation = pytest.importorskip(
        "cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling",
        reason="cityscapesscripts is not installed (pip install cityscapesscripts)")
    if not hasattr(np, "in1d"):  # removed in NumPy 2.4; cityscapesscripts 2.3.0 still calls it
        monkeypatch.setattr(np, "in1d", lambda a, b, invert=False: np.isin(np.ravel(a), b, invert=invert),
                            raising=False)
    monkeypatch.setattr(evaluation.args, "quiet", True)
    monkeypatch.setattr(evaluation.args, "JSONOutput", False)
    monkeypatch.setattr(evaluation.args, "evalInstLevelScore", True)
    return evaluation


def _official_cityscapes(evaluation, monkeypatch, gt_dir, pred_dir) -> dict:
    monkeypatch.setattr(evaluation.args, "predictionPath", str(pred_dir))
    monkeypatch.setattr(evaluation.args, "predictionWalk", None)
    gts = sorted(glob.glob(str(gt_dir / "*" / "*_gtFine_labelIds.png")))
    preds = [evaluation.getPrediction(evaluation.args, g) for g in gts]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its own deprecations are not ours to fail on
        return evaluation.evaluateImgLists(preds, gts, evaluation.args)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cityscapes_reproduces_cityscapesscripts_exactly(tmp_path, monkeypatch, cityscapes_eval, seed):
    rng = np.random.default_rng(seed)
    gt_dir, pred_dir = _write_cityscapes(tmp_path, rng)
    official = _official_cityscapes(cityscapes_eval, monkeypatch, gt_dir, pred_dir)
    doc = _evaluate_json(pred_dir, gt_dir, tmp_path, "--dataset", "cityscapes")
    m = doc["metrics"]
    assert m["miou"] == official["averageScoreClasses"]
    assert m["iiou"] == official["averageScoreInstClasses"]
    assert m["category_miou"] == official["averageScoreCategories"]
    assert m["category_iiou"] == official["averageScoreInstCategories"]
    ds = am.datasets.get("cityscapes")
    for row in doc["per_class"]:
        want = official["classScores"][ds.class_names[row["id"]]]
        assert (row["iou"] is None and np.isnan(want)) or row["iou"] == want, row
    # The Python accumulator on the same files: the official confusion matrix and every score
    cm = ds.confusion_matrix()
    for gt_path in sorted(gt_dir.glob("*/*_gtFine_labelIds.png")):
        stem = gt_path.name[: -len("_gtFine_labelIds.png")]
        pred = np.asarray(Image.open(next(pred_dir.glob(f"*/{stem}*.png"))))
        inst = np.asarray(Image.open(gt_path.with_name(stem + "_gtFine_instanceIds.png")))
        cm.update(pred, np.asarray(Image.open(gt_path)), instances=inst)
    assert np.array_equal(cm.matrix, np.asarray(official["confMatrix"], dtype=np.int64))
    ours = cm.official_scores()
    for key in ("classScores", "classInstScores", "categoryScores", "categoryInstScores"):
        assert ours[key].keys() == official[key].keys()
        for name, value in official[key].items():
            assert (np.isnan(value) and np.isnan(ours[key][name])) or ours[key][name] == value, (key, name)


def test_cityscapes_train_id_predictions_score_as_their_label_ids(tmp_path, monkeypatch, cityscapes_eval):
    rng = np.random.default_rng(7)
    gt_dir, pred_dir = _write_cityscapes(tmp_path / "a", rng)
    official = _official_cityscapes(cityscapes_eval, monkeypatch, gt_dir, pred_dir)
    # the same predictions as trainIds (ignored labelIds -> 255, which cityscapesScripts maps back to unlabeled)
    rng = np.random.default_rng(7)
    gt_dir2, pred_dir2 = _write_cityscapes(tmp_path / "b", rng, train_ids=True)
    doc = _evaluate_json(pred_dir2, gt_dir2, tmp_path, "--dataset", "cityscapes", "--pred-train-ids")
    assert doc["metrics"]["miou"] == official["averageScoreClasses"]
    assert doc["metrics"]["category_miou"] == official["averageScoreCategories"]
    # iIoU's category scores count caravan/trailer predictions, which trainIds cannot say: not compared


def test_cityscapes_hand_worked_example():
    """Every official score of one small image, worked out by hand from evalPixelLevelSemanticLabeling's
    formulas (needs no cityscapesscripts)."""
    gt = np.array([[26, 26, 26, 26], [26, 26, 24, 24], [0, 4, 8, 8]], np.uint8)
    inst = np.array([[26001, 26001, 26001, 26001], [26002, 26002, 24000, 24000], [0, 4, 8, 8]], np.int32)
    pred = np.array([[26, 26, 27, 7], [26, 0, 24, 26], [26, 26, 8, 11]], np.uint8)
    cm = am.datasets.get("cityscapes").confusion_matrix()
    cm.update(pred, gt, instances=inst)
    s = cm.official_scores()
    car, person = 12794.0202738185, 3462.4756337644  # avgClassSize
    c = s["classScores"]
    assert (c["road"], c["sidewalk"], c["building"], c["person"], c["car"], c["truck"]) == (0.0, 0.5, 0.0, 0.5, 3 / 7, 0.0)
    assert np.isnan(c["unlabeled"]) and np.isnan(c["rider"]) and np.isnan(c["sky"])
    assert s["averageScoreClasses"] == (0.0 + 0.5 + 0.0 + 0.5 + 3 / 7 + 0.0) / 6
    # car instances 26001 (4 px, 2 right) and 26002 (2 px, 1 right); 1 person pixel predicted car
    tp_w = 0.0 + 2.0 * (car / 4) + 1.0 * (car / 2)
    fn_w = 0.0 + 2.0 * (car / 4) + 1.0 * (car / 2)
    inst_car = tp_w / ((tp_w + 1) + fn_w)
    i = s["classInstScores"]
    assert i["car"] == inst_car and i["person"] == 0.5 and i["truck"] == 0.0 and np.isnan(i["rider"])
    assert s["averageScoreInstClasses"] == (0.5 + inst_car + 0.0) / 3
    k = s["categoryScores"]
    assert (k["flat"], k["construction"], k["human"], k["vehicle"]) == (1 / 3, 0.0, 0.5, 4 / 7)
    assert np.isnan(k["void"]) and np.isnan(k["sky"])
    assert s["averageScoreCategories"] == (1 / 3 + 0.0 + 0.5 + 4 / 7) / 4
    # vehicle instances: 26001 has 3 vehicle pixels (car, car, truck), 26002 has 1; the person pixel predicted car
    tp_w = 0.0 + 3.0 * (car / 4) + 1.0 * (car / 2)
    fn_w = 0.0 + 1.0 * (car / 4) + 1.0 * (car / 2)
    vehicle = tp_w / ((tp_w + 1) + fn_w)
    assert s["categoryInstScores"]["human"] == (person / 2) / ((person / 2 + 0) + person / 2) == 0.5
    assert s["categoryInstScores"]["vehicle"] == vehicle
    assert s["averageScoreInstCategories"] == (0.5 + vehicle) / 2


def test_cityscapes_prediction_rules(tmp_path):
    rng = np.random.default_rng(3)
    gt_dir, pred_dir = _write_cityscapes(tmp_path, rng, images=2)
    extra = next(pred_dir.glob("*/*.png"))
    (pred_dir / "elsewhere").mkdir()
    Image.open(extra).save(pred_dir / "elsewhere" / extra.name.replace("leftImg8bit", "other"))
    code, _, err = _run("evaluate", pred_dir, gt_dir, "--dataset", "cityscapes", "--quiet")
    assert code == 1 and "found multiple predictions for ground truth" in err
    (pred_dir / "elsewhere" / extra.name.replace("leftImg8bit", "other")).unlink()
    extra.unlink()
    code, _, err = _run("evaluate", pred_dir, gt_dir, "--dataset", "cityscapes", "--quiet")
    assert code == 1 and "1 ground-truth file(s)" in err and extra.name[:23] in err
    next(gt_dir.glob("*/*_gtFine_instanceIds.png")).unlink()
    code, _, err = _run("evaluate", pred_dir, gt_dir, "--dataset", "cityscapes", "--quiet", "--allow-missing")
    assert code == 1 and "_gtFine_instanceIds.png: missing" in err


# -- COCO-Stuff ------------------------------------------------------------------------------------------

def _coco_official(gt_files, pred_files) -> dict:
    """models/deeplab/evaluate_performance.py's procedure: 182 x 182 confusion of the stuffthingmaps ids,
    ground truth outside 0..181 (255) dropped, then _computeMetrics."""
    confusion = np.zeros((182, 182))
    for g, p in zip(gt_files, pred_files):
        gt, pred = np.asarray(Image.open(g)), np.asarray(Image.open(p))
        valid = np.isin(gt, np.arange(182))
        n = 183
        vals, counts = np.unique(gt[valid].astype(int) * n + pred[valid].astype(int), return_counts=True)
        for v, c in zip(vals, counts):
            confusion[v // n, v % n] += c
    tp, pos_pred, pos_gt = np.diagonal(confusion), confusion.sum(axis=0), confusion.sum(axis=1)
    valid = pos_gt > 0
    ious_valid = valid & (pos_gt + pos_pred - tp > 0)
    ious = np.full(182, np.nan)
    ious[ious_valid] = tp[ious_valid] / (pos_gt[ious_valid] + pos_pred[ious_valid] - tp[ious_valid])
    maccs = np.full(182, np.nan)
    maccs[valid] = tp[valid] / pos_gt[valid]
    freqs = pos_gt / confusion.sum()
    return {"miou": np.mean(ious[ious_valid]), "fwiou": np.sum(ious[ious_valid] * freqs[ious_valid]),
            "macc": np.mean(maccs[valid]), "pacc": tp.sum() / confusion.sum(), "ious": ious}


def test_coco_stuff_reproduces_evaluate_performance(tmp_path):
    ds = am.datasets.get("coco-stuff-171")
    rng = np.random.default_rng(11)
    used = [lab.id for lab in ds.raw_labels if lab.class_id >= 0]
    gt_dir, pred_dir = tmp_path / "stuffthingmaps_trainval2017" / "val2017", tmp_path / "pred"
    gt_dir.mkdir(parents=True)
    pred_dir.mkdir()
    for i in range(5):
        gt = _blocks(rng, (40, 56), used[: 120] + [255])
        pred = _noisy(rng, np.where(gt == 255, used[0], gt), list(range(182)), 0.3)  # any of the 182 ids
        Image.fromarray(gt.astype(np.uint8)).save(gt_dir / f"{i:012d}.png")
        Image.fromarray(pred.astype(np.uint8)).save(pred_dir / f"{i:012d}.png")
    files = sorted(gt_dir.glob("*.png"))
    official = _coco_official(files, [pred_dir / f.name for f in files])
    doc = _evaluate_json(pred_dir, gt_dir, tmp_path, "--dataset", "coco-stuff-171")
    m = doc["metrics"]
    assert (m["miou"], m["fwiou"], m["macc"], m["aacc"]) == (official["miou"], official["fwiou"], official["macc"],
                                                            official["pacc"])
    for row in doc["per_class"]:  # class k is stuffthingmaps id used[k]
        want = official["ious"][used[row["id"]]]
        assert (row["iou"] is None and np.isnan(want)) or row["iou"] == want
    # predictions as train ids 0..170 give the same, unused ids aside (none are written then)
    rng = np.random.default_rng(12)
    train_dir = tmp_path / "train"
    train_dir.mkdir()
    for f in files:
        gt = np.asarray(Image.open(f))
        pred = np.where(gt == 255, 0, ds.gt_to_class[np.where(gt == 255, 0, gt)])
        Image.fromarray(pred.astype(np.uint8)).save(train_dir / f.name)
    doc = _evaluate_json(train_dir, gt_dir, tmp_path, "--dataset", "coco-stuff-171", "--pred-train-ids")
    assert doc["metrics"]["miou"] == 1.0 and doc["metrics"]["aacc"] == 1.0


# -- PASCAL VOC ------------------------------------------------------------------------------------------

def test_pascal_voc_reproduces_vocevalseg(tmp_path):
    ds = am.datasets.get("pascal-voc")
    rng = np.random.default_rng(5)
    gt_dir, pred_dir = tmp_path / "SegmentationClass", tmp_path / "pred"
    gt_dir.mkdir()
    pred_dir.mkdir()
    palette = [int(c) for c in ds.palette.reshape(-1)] + [0, 0, 0] * 234 + [224, 224, 192]
    conf = np.zeros((21, 21), np.int64)
    for i in range(4):
        gt = _blocks(rng, (50, 70), range(21))
        gt[::9, :] = 255  # object borders
        pred = _noisy(rng, np.where(gt == 255, 0, gt), range(21))
        image = Image.fromarray(gt.astype(np.uint8), mode="P")
        image.putpalette(palette)
        image.save(gt_dir / f"2007_{i:06d}.png")
        out = Image.fromarray(pred.astype(np.uint8), mode="P")
        out.putpalette(palette)
        out.save(pred_dir / f"2007_{i:06d}.png")
        # VOCevalseg.m: locs = gtim < 255; sumim = 1 + gtim + resim * num; histc over locs
        locs = gt < 255
        np.add.at(conf, (gt[locs], pred[locs]), 1)
    assert (conf.sum(axis=1) > 0).all()
    iou = np.diag(conf) / (conf.sum(axis=0) + conf.sum(axis=1) - np.diag(conf))
    doc = _evaluate_json(pred_dir, gt_dir, tmp_path, "--dataset", "pascal-voc")
    assert doc["metrics"]["miou"] == pytest.approx(np.mean(iou), abs=1e-14)
    assert [r["iou"] for r in doc["per_class"]] == iou.tolist()
    assert doc["per_class"][15]["name"] == "person"


# -- detectron2's SemSegEvaluator datasets ---------------------------------------------------------------

def _detectron2_official(pairs, k: int, ignore: int) -> dict:
    """SemSegEvaluator.process/evaluate: bincount of (K+1) * pred + gt with ignored gt set to K."""
    conf = np.zeros((k + 1, k + 1), dtype=np.int64)
    for pred, gt in pairs:
        gt = gt.astype(np.int64)
        gt[gt == ignore] = k
        conf += np.bincount((k + 1) * pred.astype(np.int64).reshape(-1) + gt.reshape(-1),
                            minlength=conf.size).reshape(conf.shape)
    tp = conf.diagonal()[:-1].astype(np.float64)
    pos_gt = np.sum(conf[:-1, :-1], axis=0).astype(np.float64)
    pos_pred = np.sum(conf[:-1, :-1], axis=1).astype(np.float64)
    acc_valid = pos_gt > 0
    union = pos_gt + pos_pred - tp
    iou_valid = acc_valid & (union > 0)
    iou = np.full(k, np.nan)
    iou[iou_valid] = tp[iou_valid] / union[iou_valid]
    acc = np.full(k, np.nan)
    acc[acc_valid] = tp[acc_valid] / pos_gt[acc_valid]
    weights = pos_gt / np.sum(pos_gt)
    return {"miou": np.sum(iou[acc_valid]) / np.sum(iou_valid), "macc": np.sum(acc[acc_valid]) / np.sum(acc_valid),
            "fwiou": np.sum(iou[acc_valid] * weights[acc_valid]), "aacc": np.sum(tp) / np.sum(pos_gt), "iou": iou}


@pytest.mark.parametrize("name, gt_suffix, pred_suffix, dtype", [
    ("ade20k-847", ".tif", ".png", np.uint16),
    ("pascal-context-459", ".tif", ".tif", np.uint16),
    ("pascal-context-59", ".png", ".png", np.uint8),
    ("mapillary-vistas", ".png", ".png", np.uint8),
])
def test_detectron2_datasets_reproduce_semsegevaluator(tmp_path, name, gt_suffix, pred_suffix, dtype):
    ds = am.datasets.get(name)
    k, ignore = ds.num_classes, ds.ignore_index
    rng = np.random.default_rng(len(name))
    gt_dir, pred_dir = tmp_path / "annotations_detectron2" / "validation", tmp_path / "pred"
    gt_dir.mkdir(parents=True)
    pred_dir.mkdir()
    classes = rng.choice(k, size=min(k, 40), replace=False)
    pairs = []
    for i in range(4):
        gt = _blocks(rng, (44, 60), list(classes) + [ignore])
        pred = _noisy(rng, np.where(gt == ignore, classes[0], gt), rng.choice(k, size=12, replace=False))
        gt, pred = gt.astype(dtype), pred.astype(dtype)
        gt_image = Image.fromarray(gt)
        if name == "mapillary-vistas":  # v1.2 labels are palette images
            gt_image = Image.fromarray(gt, mode="P")
            gt_image.putpalette([int(c) for c in ds.palette.reshape(-1)] + [0, 0, 0])
        gt_image.save(gt_dir / f"img_{i:04d}{gt_suffix}")
        Image.fromarray(pred).save(pred_dir / f"img_{i:04d}{pred_suffix}")
        pairs.append((pred, gt))
    official = _detectron2_official(pairs, k, ignore)
    doc = _evaluate_json(pred_dir, gt_dir, tmp_path, "--dataset", name)
    assert doc["environment"]["convention"] == "detectron2"
    for key in ("miou", "macc", "fwiou", "aacc"):
        assert doc["metrics"][key] == pytest.approx(official[key], abs=1e-14), key
    for row in doc["per_class"]:
        want = official["iou"][row["id"]]
        assert (row["iou"] is None and np.isnan(want)) or row["iou"] == want
    assert [r["name"] for r in doc["per_class"]][:2] == list(ds.class_names[:2])


def test_mapillary_colour_coded_predictions_score_like_indices(tmp_path):
    ds = am.datasets.get("mapillary-vistas")
    rng = np.random.default_rng(21)
    gt_dir, index_dir, colour_dir = tmp_path / "labels", tmp_path / "index", tmp_path / "colour"
    for d in (gt_dir, index_dir, colour_dir):
        d.mkdir()
    for i in range(3):
        gt = _blocks(rng, (30, 40), list(range(65)) + [65]).astype(np.uint8)
        pred = _noisy(rng, np.where(gt == 65, 0, gt), range(65)).astype(np.uint8)
        image = Image.fromarray(gt, mode="P")
        image.putpalette([int(c) for c in ds.palette.reshape(-1)] + [0, 0, 0])
        image.save(gt_dir / f"{i}.png")
        Image.fromarray(pred).save(index_dir / f"{i}.png")
        Image.fromarray(ds.palette[pred]).save(colour_dir / f"{i}.png")
    by_index = _evaluate_json(index_dir, gt_dir, tmp_path, "--dataset", "mapillary-vistas")
    by_colour = _evaluate_json(colour_dir, gt_dir, tmp_path, "--dataset", "mapillary-vistas", "--pred-colors")
    assert by_colour["confusion_matrix"] == by_index["confusion_matrix"]
    rgb = np.asarray(Image.open(colour_dir / "1.png")).copy()
    rgb[3, 4] = (1, 2, 3)
    Image.fromarray(rgb).save(colour_dir / "1.png")
    code, _, err = _run("evaluate", colour_dir, gt_dir, "--dataset", "mapillary-vistas", "--pred-colors", "--quiet")
    assert code == 1 and "1.png: colour (1, 2, 3) at pixel (row 3, column 4) is not in the dataset's palette" in err


# -- ADE20K-150 (as today) -------------------------------------------------------------------------------

def test_ade20k_dataset_is_todays_evaluate(tmp_path):
    rng = np.random.default_rng(2)
    gt_dir, pred_dir = tmp_path / "annotations" / "validation", tmp_path / "pred"
    gt_dir.mkdir(parents=True)
    pred_dir.mkdir()
    for i in range(3):
        gt = _blocks(rng, (40, 50), range(151)).astype(np.uint8)
        Image.fromarray(gt).save(gt_dir / f"ADE_val_{i:08d}.png")
        Image.fromarray(_noisy(rng, np.maximum(gt, 1), range(1, 151)).astype(np.uint8)).save(
            pred_dir / f"ADE_val_{i:08d}.png")
    plain = _evaluate_json(pred_dir, gt_dir, tmp_path)
    named = _evaluate_json(pred_dir, gt_dir, tmp_path, "--dataset", "ade20k")
    assert named["confusion_matrix"] == plain["confusion_matrix"] and named["metrics"] == plain["metrics"]


# -- the command line's rules ------------------------------------------------------------------------------

def test_dataset_options_conflicts_are_usage_errors(tmp_path):
    code, _, err = _run("evaluate", tmp_path, tmp_path, "--pred-colors")
    assert code == 2 and "need --dataset" in err
    code, _, err = _run("evaluate", tmp_path, tmp_path, "--dataset", "pascal-voc", "--num-classes", "21")
    assert code == 2 and "drop --num-classes" in err
    code, _, err = _run("evaluate", tmp_path, tmp_path, "--dataset", "cityscapes", "--pred-colors", "--pred-train-ids")
    assert code == 2 and "exclude each other" in err
    code, _, err = _run("evaluate", tmp_path, tmp_path, "--dataset", "cityscapes", "--params", "10")
    assert code == 2 and "ADE20K leaderboard" in err


def test_jpeg_predictions_are_refused_with_the_reason(tmp_path):
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    gt_dir.mkdir()
    pred_dir.mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(gt_dir / "a.png")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(pred_dir / "a.jpg")
    code, _, err = _run("evaluate", pred_dir, gt_dir, "--dataset", "pascal-voc", "--quiet")
    assert code == 1 and "a.jpg: a JPEG among the label maps; JPEG is lossy" in err


def test_show_uses_the_dataset_palette(tmp_path):
    ds = am.datasets.get("cityscapes")
    gt = np.full((20, 30), 7, np.uint8)
    gt[:, 15:] = 26
    pred = gt.copy()
    pred[:5] = 0  # a void prediction: drawn as background, counted as an error
    Image.fromarray(gt).save(tmp_path / "gt.png")
    Image.fromarray(pred).save(tmp_path / "pred.png")
    code, _, err = _run("show", tmp_path / "pred.png", tmp_path / "gt.png", "-o", tmp_path / "s.png",
                        "--dataset", "cityscapes")
    assert code == 0, err
    picture = np.asarray(Image.open(tmp_path / "s.png").convert("RGB"))

    def pixels(colour) -> int:
        return int((picture == np.asarray(colour, np.uint8)).all(axis=-1).sum())

    # ground truth: 20 x 15 road and car; prediction: 15 x 15 of each (the top 5 rows are void, not drawn)
    assert pixels(ds.palette[0]) >= 300 + 225 and pixels(ds.palette[13]) >= 300 + 225
    ade = am.ade20k.classes().palette  # what show drew before --dataset: class ids in ADE20K's colours
    assert pixels(ade[0]) < 100 and pixels(ade[13]) < 100
