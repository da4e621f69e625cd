"""compat.hf_mean_iou: HF evaluate's published example, hand-worked cases, an independent oracle."""
from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import ade20k_metrics as am
from ade20k_metrics.compat import hf_mean_iou

KEYS = ["mean_iou", "mean_accuracy", "overall_accuracy", "per_category_iou", "per_category_accuracy"]


def test_hf_docstring_example():
    # The example and printed output in HF evaluate's metrics/mean_iou/mean_iou.py docstring.
    predicted = [np.array([[1, 2], [3, 4], [5, 255]]),
                 np.array([[2, 7], [9, 2], [3, 6]]),
                 np.array([[2, 2, 3], [8, 2, 4], [3, 255, 2]])]
    actual = [np.array([[0, 3], [5, 4], [6, 255]]),
              np.array([[1, 7], [9, 2], [3, 6]]),
              np.array([[1, 2, 2], [8, 2, 1], [3, 255, 1]])]
    out = hf_mean_iou(predicted, actual, num_labels=10, ignore_index=255, reduce_labels=False)
    assert list(out) == KEYS
    assert out["mean_iou"] == pytest.approx(0.47750000000000004, rel=1e-15)
    assert out["mean_accuracy"] == pytest.approx(0.5916666666666666, rel=1e-15)
    assert out["overall_accuracy"] == pytest.approx(0.5263157894736842, rel=1e-15)
    np.testing.assert_allclose(out["per_category_iou"], [0, 0, 0.375, 0.4, 0.5, 0, 0.5, 1, 1, 1], rtol=1e-15)
    np.testing.assert_allclose(out["per_category_accuracy"], [0, 0, 0.75, 2 / 3, 1, 0, 0.5, 1, 1, 1], rtol=1e-15)
    assert isinstance(out["mean_iou"], np.float64) and out["per_category_iou"].dtype == np.float64


def test_reduce_labels_by_hand():
    # 0 -> ignored, k -> k-1, 255 stays ignored.  Evaluated pixels (gt, pred): (0, 0), (1, 0).
    label = np.array([[0, 1], [2, 255]], dtype=np.uint8)
    pred = np.array([[5, 0], [0, 1]])
    out = hf_mean_iou([pred], [label], num_labels=2, ignore_index=255, reduce_labels=True)
    np.testing.assert_allclose(out["per_category_iou"], [1 / 2, 0])
    np.testing.assert_allclose(out["per_category_accuracy"], [1, 0])
    assert out["mean_iou"] == pytest.approx(0.25)
    assert out["overall_accuracy"] == pytest.approx(0.5)


def test_label_map_reads_the_original_labels():
    # {1: 2, 2: 3}: 1 -> 2 and 2 -> 3, never 1 -> 2 -> 3.  Mapped ground truth [2, 3, 3].
    label = np.array([1, 2, 3])
    pred = np.array([2, 3, 3])
    out = hf_mean_iou([pred], [label], num_labels=4, ignore_index=255, label_map={1: 2, 2: 3})
    np.testing.assert_allclose(out["per_category_iou"], [np.nan, np.nan, 1, 1])
    assert out["mean_iou"] == 1.0


def test_label_map_comes_before_reduce_labels_as_in_hf():
    # label_map {0: 3} first turns the background into 3, which reduce_labels makes class 2 (evaluated).
    label = np.array([[0, 1]], dtype=np.uint8)
    pred = np.array([[2, 0]])
    out = hf_mean_iou([pred], [label], num_labels=3, ignore_index=255, label_map={0: 3}, reduce_labels=True)
    np.testing.assert_allclose(out["per_category_iou"], [1, np.nan, 1])
    assert out["overall_accuracy"] == 1.0


def test_label_map_to_ids_beyond_the_label_dtype():
    # HF would write 300 into a uint8 array; here it is class 300.
    label = np.array([1, 1, 0], dtype=np.uint8)
    pred = np.array([300, 0, 0])
    out = hf_mean_iou([pred], [label], num_labels=301, ignore_index=255, label_map={1: 300})
    assert out["per_category_iou"][300] == pytest.approx(1 / 2)
    assert out["per_category_iou"][0] == pytest.approx(1 / 2)


def test_reduce_labels_ignores_background_whatever_ignore_index():
    label = np.array([0, 1, 2], dtype=np.uint8)
    pred = np.array([1, 0, 1])
    out = hf_mean_iou([pred], [label], num_labels=2, ignore_index=-100, reduce_labels=True)
    np.testing.assert_allclose(out["per_category_iou"], [1, 1])


def test_nan_to_num_replaces_after_the_means():
    out = hf_mean_iou([np.array([2, 3])], [np.array([2, 3])], num_labels=4, ignore_index=255, nan_to_num=-1)
    np.testing.assert_array_equal(out["per_category_iou"], [-1, -1, 1, 1])
    np.testing.assert_array_equal(out["per_category_accuracy"], [-1, -1, 1, 1])
    assert out["mean_iou"] == 1.0
    empty = hf_mean_iou([np.array([255])], [np.array([255])], num_labels=2, ignore_index=255, nan_to_num=0)
    assert empty["mean_iou"] == 0.0 and empty["overall_accuracy"] == 0.0


def test_inputs_are_never_modified():
    preds = [np.array([[0, 1], [1, 2]], dtype=np.uint8)]
    labels = [np.array([[0, 1], [2, 3]], dtype=np.uint8)]
    label_map = {1: 2, 2: 1}
    before = (copy.deepcopy(preds), copy.deepcopy(labels), dict(label_map))
    hf_mean_iou(preds, labels, num_labels=3, ignore_index=255, label_map=label_map, reduce_labels=True)
    np.testing.assert_array_equal(preds[0], before[0][0])
    np.testing.assert_array_equal(labels[0], before[1][0])
    assert label_map == before[2]


def test_errors():
    ok = [np.zeros((2, 2), np.uint8)]
    with pytest.raises(ValueError, match=r"1 label\(s\) outside \[0, 3\)"):
        hf_mean_iou(ok, [np.array([[0, 0], [0, 7]])], num_labels=3, ignore_index=255)
    with pytest.raises(ValueError, match="pred"):
        hf_mean_iou([np.array([[0, 9], [0, 0]])], ok, num_labels=3, ignore_index=255)
    with pytest.raises(ValueError, match="2 predictions but 1"):
        hf_mean_iou(ok * 2, ok, num_labels=3, ignore_index=255)
    with pytest.raises(ValueError, match="shape"):
        hf_mean_iou([np.zeros((2, 3), np.uint8)], ok, num_labels=3, ignore_index=255)
    with pytest.raises(TypeError, match="floating"):
        hf_mean_iou([np.zeros((2, 2))], ok, num_labels=3, ignore_index=255)
    with pytest.raises(TypeError, match="label_map"):
        hf_mean_iou(ok, ok, num_labels=3, ignore_index=255, label_map=[(1, 2)])
    with pytest.raises(TypeError, match="reduce_labels"):
        hf_mean_iou(ok, ok, num_labels=3, ignore_index=255, reduce_labels="yes")


def hf_semantics(results, gt_seg_maps, num_labels, ignore_index, label_map=None, reduce_labels=False):
    """HF's algorithm as its docstring describes it, written out independently (NumPy, per image)."""
    inter = np.zeros(num_labels)
    area_pred = np.zeros(num_labels)
    area_label = np.zeros(num_labels)
    for pred, label in zip(results, gt_seg_maps):
        raw = np.asarray(label, dtype=np.int64)
        mapped = raw.copy()
        for old, new in (label_map or {}).items():
            mapped[raw == old] = new
        if reduce_labels:
            mapped = np.where(mapped == 0, 255, mapped) - 1
            mapped[mapped == 254] = 255
        keep = mapped != ignore_index
        p, t = np.asarray(pred, dtype=np.int64)[keep], mapped[keep]
        inter += np.bincount(p[p == t], minlength=num_labels)
        area_pred += np.bincount(p, minlength=num_labels)
        area_label += np.bincount(t, minlength=num_labels)
    union = area_pred + area_label - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        iou, acc = inter / union, inter / area_label
        overall = inter.sum() / area_label.sum()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # nanmean of all-NaN, as HF's own
        return {"mean_iou": np.nanmean(iou), "mean_accuracy": np.nanmean(acc), "overall_accuracy": overall,
                "per_category_iou": iou, "per_category_accuracy": acc}


@st.composite
def hf_cases(draw):
    k = draw(st.integers(1, 6))
    reduce_labels = draw(st.booleans())
    n_images = draw(st.integers(0, 4))
    # Raw ground truth: with reduce_labels, 0 is background and 1..k the classes.
    lo, hi = (0, k) if reduce_labels else (0, k - 1)
    keys = draw(st.lists(st.integers(lo, hi), max_size=3, unique=True))
    # Map only among classes (and, with reduce, maybe onto the background 0).
    label_map = {key: draw(st.integers(lo, hi)) for key in keys} or None
    images = []
    for _ in range(n_images):
        h, w = draw(st.integers(1, 5)), draw(st.integers(1, 5))
        label = np.array(draw(st.lists(st.one_of(st.integers(lo, hi), st.just(255)), min_size=h * w,
                                       max_size=h * w)), dtype=np.uint8).reshape(h, w)
        pred = np.array(draw(st.lists(st.integers(0, k - 1), min_size=h * w, max_size=h * w))).reshape(h, w)
        images.append((pred, label))
    return k, reduce_labels, label_map, images


@given(hf_cases())
def test_matches_hf_semantics(case):
    k, reduce_labels, label_map, images = case
    preds, labels = [p for p, _ in images], [t for _, t in images]
    ours = hf_mean_iou(preds, labels, num_labels=k, ignore_index=255, label_map=label_map,
                       reduce_labels=reduce_labels)
    expected = hf_semantics(preds, labels, k, 255, label_map, reduce_labels)
    for key in KEYS:
        np.testing.assert_allclose(ours[key], expected[key], rtol=1e-15, equal_nan=True, err_msg=key)


def test_same_numbers_as_the_accumulator_on_ade20k_samples():
    # hf_mean_iou with reduce_labels agrees with ConfusionMatrix(reduce_zero_label=True) (mmseg order and
    # HF order coincide without a label_map).
    from ade20k_metrics import ade20k

    gts = list(ade20k.sample_annotations().values())
    preds = [ade20k.simulate_prediction(g, seed=i) - 1 for i, g in enumerate(gts)]
    cm = am.ConfusionMatrix(150, reduce_zero_label=True)
    for p, g in zip(preds, gts):
        cm.update(p, g)
    m = cm.compute()
    out = hf_mean_iou(preds, gts, num_labels=150, ignore_index=255, reduce_labels=True)
    assert out["mean_iou"] == m.miou and out["overall_accuracy"] == m.aacc
    np.testing.assert_array_equal(out["per_category_iou"], m.iou)


def test_out_of_range_ground_truth_after_label_map_names_the_transform():
    with pytest.raises(ValueError, match=r"after label_map/reduce_labels\), e\.g\. 5"):
        hf_mean_iou([np.zeros(2, np.uint8)], [np.array([0, 1])], num_labels=3, ignore_index=255, label_map={1: 5})
