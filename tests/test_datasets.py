"""am.datasets: the registry's facts, checked against the official sources (values written here by hand
from those sources, not read back from the data files), and each dataset's accumulator on small maps."""
from importlib import resources

import numpy as np
import pytest

import ade20k_metrics as am

NAMES = ("ade20k", "ade20k-847", "cityscapes", "pascal-voc", "pascal-context-59", "pascal-context-459",
         "coco-stuff-171", "mapillary-vistas")
CLASSES = {"ade20k": 150, "ade20k-847": 847, "cityscapes": 19, "pascal-voc": 21, "pascal-context-59": 59,
           "pascal-context-459": 459, "coco-stuff-171": 171, "mapillary-vistas": 65}


def test_names_are_the_design_list():
    assert am.datasets.names() == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_every_dataset_has_names_and_a_palette(name):
    ds = am.datasets.get(name)
    k = CLASSES[name]
    assert ds.num_classes == k and len(ds.class_names) == k
    assert all(isinstance(n, str) and n for n in ds.class_names)
    assert ds.palette.shape == (k, 3) and ds.palette.dtype == np.uint8
    assert not ds.palette.flags.writeable
    assert ds.convention in am.CONVENTIONS
    assert ds.sources


@pytest.mark.parametrize("name", [n for n in NAMES if n != "ade20k"])
def test_every_data_file_cites_its_source_with_a_commit(name):
    folder = resources.files("ade20k_metrics.datasets").joinpath("data", name)
    csvs = [f for f in folder.iterdir() if f.name.endswith(".csv")]
    assert csvs
    for f in csvs:
        header = [line for line in f.read_text(encoding="utf-8").splitlines() if line.startswith("#")]
        text = " ".join(header)
        assert "commit" in text and "/" in text, f"{f.name} cites no source"
    meta = folder.joinpath("dataset.json").read_text(encoding="utf-8")
    assert "commit" in meta or "devkit" in meta or "development kit" in meta


def test_get_refuses_unknown_names():
    with pytest.raises(ValueError, match="choose from ade20k, ade20k-847, cityscapes"):
        am.datasets.get("cityscape")
    with pytest.raises(TypeError, match="str"):
        am.datasets.get(19)


def test_ade20k_is_todays_table():
    ds = am.datasets.get("ade20k")
    assert ds.class_names == am.ade20k.class_names()
    assert np.array_equal(ds.palette, am.ade20k.classes().palette)
    assert np.array_equal(ds.stuff, am.ade20k.classes().stuff)
    assert ds.convention == "mmseg" and ds.reduce_zero_label and ds.ignore_index == 255


def test_cityscapes_facts_from_labels_py():
    ds = am.datasets.get("cityscapes")
    # cityscapesScripts labels.py: (name, id, trainId, category, hasInstances, ignoreInEval)
    rows = {lab.id: lab for lab in ds.raw_labels}
    for name, label_id, train_id, category, instances, ignored in [
            ("unlabeled", 0, 255, "void", False, True), ("road", 7, 0, "flat", False, False),
            ("parking", 9, 255, "flat", False, True), ("building", 11, 2, "construction", False, False),
            ("polegroup", 18, 255, "object", False, True), ("traffic sign", 20, 7, "object", False, False),
            ("sky", 23, 10, "sky", False, False), ("person", 24, 11, "human", True, False),
            ("car", 26, 13, "vehicle", True, False), ("caravan", 29, 255, "vehicle", True, True),
            ("trailer", 30, 255, "vehicle", True, True), ("train", 31, 16, "vehicle", True, False),
            ("bicycle", 33, 18, "vehicle", True, False)]:
        lab = rows[label_id]
        assert (lab.name, lab.category, lab.has_instances, lab.ignore_in_eval) == (name, category, instances, ignored)
        assert lab.class_id == (-1 if ignored else train_id)
        assert ds.gt_to_class[label_id] == (-1 if ignored else train_id)
        assert ds.pred_to_class[label_id] == (19 if ignored else train_id)
    assert rows[-1].name == "license plate"
    assert ds.count_classes == 34 and ds.ignore_index is None
    assert ds.class_names[:3] == ("road", "sidewalk", "building") and ds.class_names[-1] == "bicycle"
    assert [ds.class_names[i] for i in np.flatnonzero(ds.things)] == [
        "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle"]
    assert ds.categories[0] == "flat" and ds.categories[-1] == "vehicle"
    assert tuple(ds.palette[0]) == (128, 64, 128) and tuple(ds.palette[13]) == (0, 0, 142)
    # evalPixelLevelSemanticLabeling.py's avgClassSize
    assert ds.instance_sizes["person"] == 3462.4756337644 and ds.instance_sizes["trailer"] == 16926.9763313609
    assert len(ds.instance_sizes) == 10
    # trainId -> labelId as trainId2label: 0 -> 7 (road), 18 -> 33, 255 -> 0 (unlabeled)
    assert ds.pred_train_ids[0] == 7 and ds.pred_train_ids[18] == 33 and ds.pred_train_ids[255] == 0
    assert ds.pred_train_ids[19] == -1


def test_coco_stuff_ids_from_labels_txt():
    ds = am.datasets.get("coco-stuff-171")
    # labels.txt: 1 person ... 182 wood; stuffthingmaps hold id - 1. The README's 11 ids without annotations:
    # street sign 12, hat 26, shoe 29, eye glasses 30, plate 45, mirror 66, window 68, desk 69, door 71,
    # blender 83, hair brush 91.
    absent = [12, 26, 29, 30, 45, 66, 68, 69, 71, 83, 91]
    assert ds.gt_absent_ids == tuple(i - 1 for i in absent)
    names = {lab.id: lab.name for lab in ds.raw_labels}
    assert names[0] == "person" and names[11] == "street sign" and names[91] == "banner" and names[181] == "wood"
    assert ds.gt_to_class[0] == 0 and ds.gt_to_class[12] == 11 and ds.gt_to_class[181] == 170
    assert ds.gt_to_class[11] == -1 and ds.pred_to_class[11] == 171
    assert ds.class_names[11] == "stop sign" and ds.class_names[80] == "banner"
    assert int(ds.things.sum()) == 80 and ds.things[79] and not ds.things[80]
    assert ds.pred_train_ids[11] == 12 and ds.pred_train_ids[170] == 181
    assert ds.count_classes == 182 and ds.ignore_index == 255 and ds.convention == "detectron2"


def test_voc_context_847_mapillary_facts():
    voc = am.datasets.get("pascal-voc")
    assert voc.class_names[0] == "background" and voc.class_names[15] == "person" and voc.class_names[20] == "tvmonitor"
    # VOClabelcolormap.m: 1 -> (128, 0, 0), 15 -> (192, 128, 128), 20 -> (0, 64, 128)
    assert tuple(voc.palette[1]) == (128, 0, 0) and tuple(voc.palette[15]) == (192, 128, 128)
    assert tuple(voc.palette[20]) == (0, 64, 128) and voc.ignore_index == 255
    pc59 = am.datasets.get("pascal-context-59")
    assert pc59.class_names[:3] == ("aeroplane", "bag", "bed") and pc59.class_names[49] == "diningtable"
    assert pc59.class_names[-1] == "wood" and pc59.ignore_index == 255 and pc59.convention == "detectron2"
    pc459 = am.datasets.get("pascal-context-459")
    assert pc459.class_names[0] == "accordion" and pc459.class_names[2] == "air conditioner"
    assert pc459.class_names[-1] == "wool" and pc459.ignore_index == 65535
    full = am.datasets.get("ade20k-847")
    assert full.class_names[0] == "wall" and full.class_names[846] == "adding machine, totalizer, totaliser"
    assert full.ignore_index == 65535 and full.convention == "detectron2"
    mv = am.datasets.get("mapillary-vistas")
    assert mv.class_names[0] == "Bird" and tuple(mv.palette[0]) == (165, 42, 42)
    assert mv.class_names[64] == "Ego Vehicle" and mv.ignore_index == 65
    assert mv.things[0] and not mv.things[2]  # Bird has instances, Curb has none


@pytest.mark.parametrize("name", NAMES)
def test_confusion_matrix_is_a_confusion_matrix_of_the_dataset(name):
    ds = am.datasets.get(name)
    cm = ds.confusion_matrix()
    assert isinstance(cm, am.ConfusionMatrix)
    assert cm.compute().num_classes == ds.num_classes


def test_ade20k_accumulator_takes_official_files():
    cm = am.datasets.get("ade20k").confusion_matrix()
    gt = np.array([[0, 1, 1], [2, 2, 150]], np.uint8)          # 0 = other
    pred = np.array([[5, 1, 2], [2, 2, 150]], np.uint8)        # official 1..150
    cm.update(pred, gt)
    m = cm.matrix
    assert m[0, 0] == 1 and m[0, 1] == 1 and m[1, 1] == 2 and m[149, 149] == 1 and cm.total == 5
    with pytest.raises(ValueError, match="no label, e.g. 0"):
        cm.update(np.zeros((2, 3), np.uint8), gt)
    assert cm.total == 5
    train = am.datasets.get("ade20k").confusion_matrix(pred_train_ids=True)
    train.update(pred - 1, gt)
    assert np.array_equal(train.matrix, cm.matrix)


def test_cityscapes_accumulator_counts_label_ids_and_void_predictions():
    cm = am.datasets.get("cityscapes").confusion_matrix()
    gt = np.array([[7, 7, 7, 0], [26, 26, 26, 26]], np.uint8)
    pred = np.array([[7, 8, 4, 7], [26, 29, 0, 7]], np.uint8)
    cm.update(pred, gt)
    assert cm.matrix.shape == (34, 34) and cm.matrix[0, 7] == 1  # the unlabeled row is counted, as there
    c = cm.class_matrix()
    assert c.shape == (20, 20)
    # road: 1 right, 1 as sidewalk, 1 as a void id (static, 4); car: 1 right, 2 void (caravan, unlabeled), 1 road
    assert c[0, 0] == 1 and c[0, 1] == 1 and c[0, 19] == 1 and c[13, 13] == 1 and c[13, 19] == 2 and c[13, 0] == 1
    assert c[19].sum() == 0 and c.sum() == 7  # the unlabeled ground-truth pixel is not evaluated
    m = cm.compute()
    # road: tp 1, fn 2 (sidewalk, void), fp 1 (car predicted road): 1/4; car: tp 1, fn 3, fp 0: 1/4
    assert m.iou[0] == 0.25 and m.iou[13] == 0.25 and m.iou[1] == 0.0
    assert np.isnan(m.iou[2]) and m.num_classes == 19
    assert m.miou == pytest.approx((0.25 + 0.25 + 0.0) / 3, abs=1e-15)


def test_coco_stuff_refuses_ids_without_annotations_and_keeps_the_matrix():
    cm = am.datasets.get("coco-stuff-171").confusion_matrix()
    cm.update(np.array([[0, 11]], np.uint8), np.array([[0, 0]], np.uint8))
    before = cm.matrix.copy()
    with pytest.raises(ValueError, match="holds 11, an id coco-stuff-171's ground truth never holds"):
        cm.update(np.array([[0, 0]], np.uint8), np.array([[11, 0]], np.uint8))
    assert np.array_equal(cm.matrix, before)
    c = cm.class_matrix()
    assert c[0, 0] == 1 and c[0, 171] == 1  # a prediction of street sign: a miss, nobody's false positive


def test_state_dict_merge_and_copy_keep_the_dataset():
    ds = am.datasets.get("cityscapes")
    a, b = ds.confusion_matrix(), ds.confusion_matrix()
    gt = np.full((2, 2), 26, np.uint8)
    inst = np.full((2, 2), 26001, np.int32)
    a.update(gt, gt, instances=inst)
    b.update(np.full((2, 2), 7, np.uint8), gt, instances=inst)
    both = a + b
    assert both.total == 8 and both.official_scores()["classInstScores"]["car"] == pytest.approx(0.5)
    again = type(both).from_state_dict(both.state_dict())
    assert again == both and again.dataset is ds
    with pytest.raises(ValueError, match="different datasets"):
        a.merge(am.datasets.get("pascal-voc").confusion_matrix())


def _official_values(ds, classes: np.ndarray) -> np.ndarray:
    """Class ids written the way the dataset's official ground truth writes them."""
    if ds.name == "ade20k":
        return classes + 1
    if ds.gt_to_class is not None:
        raw = {int(c): i for i, c in enumerate(ds.gt_to_class) if c >= 0}
        return np.vectorize(raw.get)(classes)
    return classes


@pytest.mark.parametrize("name", NAMES)
def test_the_label_shift_warning_works_for_every_dataset(name):
    ds = am.datasets.get(name)
    rng = np.random.default_rng(0)
    classes = rng.integers(0, min(ds.num_classes, 40) - 1, size=(48, 48))
    gt = _official_values(ds, classes).astype(np.uint16)
    shifted = ds.confusion_matrix(pred_train_ids=True)
    shifted.update((classes + 1).astype(np.uint16), gt)          # one class too high everywhere
    with pytest.warns(am.LabelShiftWarning, match="one class higher"):
        shifted.compute()
    right = ds.confusion_matrix(pred_train_ids=True)
    right.update(classes.astype(np.uint16), gt)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert right.compute().miou == 1.0
