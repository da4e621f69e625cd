"""label_map read before reduce_zero_label, by name (``label_map_on="raw"``), as mmseg 0.30 and HF do.

Issue 13, item 3.  mmseg 0.30's ``intersect_and_union`` (mmseg/core/evaluation/
metrics.py) transforms the ground truth in this order, restated here as a fact:
  1. for each (old, new) of label_map in turn: label[label == old] = new
     (on the labels as stored: 0 and 255 are labels like any other);
  2. reduce_zero_label: label[label == 0] = 255; label = label - 1;
     label[label == 254] = 255;
  3. mask = label != ignore_index; pixels outside the mask are not counted.
HF evaluate's mean_iou does the same (``reduce_labels``).  So ``label_map={255: 1}``
remaps the ignored pixels: gt [0, 1, 255], pred [0, 1, 2] gives aAcc 2/3.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ade20k_metrics as am
from ade20k_metrics import reference
from ade20k_metrics.compat import hf_mean_iou
from ade20k_metrics.compat import mmseg as mm


def mmseg030_matrix(pred, label, k, ignore_index, label_map, reduce_zero_label):
    """The confusion matrix of mmseg 0.30's intersect_and_union order (the fact above), int64 labels."""
    label = np.array(label, dtype=np.int64)  # mmseg writes into the caller's array; this is a copy
    pred = np.asarray(pred, dtype=np.int64)
    for old, new in (label_map or {}).items():
        label[label == old] = new
    if reduce_zero_label:
        label[label == 0] = 255
        label = label - 1
        label[label == 254] = 255
    keep = label != ignore_index
    return np.bincount(k * label[keep] + pred[keep], minlength=k * k).reshape(k, k)


def test_label_map_on_ignored_pixels_as_mmseg_030_and_hf():
    gt = np.array([[0, 1, 255]], dtype=np.uint8)
    pred = np.array([[0, 1, 2]], dtype=np.uint8)
    cm = am.ConfusionMatrix(3, label_map={255: 1}, label_map_on="raw").update(pred, gt)
    assert cm.compute().aacc == pytest.approx(2 / 3)
    assert np.array_equal(cm.matrix, mmseg030_matrix(pred, gt, 3, 255, {255: 1}, False))
    # The peers' own entry points in the compat layer follow them too.
    assert hf_mean_iou([pred], [gt], 3, 255, label_map={255: 1})["overall_accuracy"] == pytest.approx(2 / 3)
    assert mm.eval_metrics([pred], [gt], 3, 255, label_map={255: 1})["aAcc"] == pytest.approx(2 / 3)
    # The default order never resurrects an ignored pixel (docs/conventions.md: a deliberate difference).
    assert am.ConfusionMatrix(3, label_map={255: 1}).update(pred, gt).compute().aacc == 1.0


def test_a_key_of_zero_before_reduce_zero_label():
    # ADE20K's "other" (0) made a class before the reduction: 0 -> 4 -> class 3; under the default
    # order a key 0 reads the reduced labels, where 0 is class 0 (raw 1).
    gt = np.array([[0, 1, 2, 4]], dtype=np.uint8)
    pred = np.array([[3, 0, 1, 3]], dtype=np.uint8)
    raw = am.ConfusionMatrix(4, reduce_zero_label=True, label_map={0: 4}, label_map_on="raw").update(pred, gt)
    assert np.array_equal(raw.matrix, mmseg030_matrix(pred, gt, 4, 255, {0: 4}, True))
    assert raw.matrix[3, 3] == 2 and raw.total == 4
    reduced = am.ConfusionMatrix(4, reduce_zero_label=True, label_map={0: 3}).update(pred, gt)
    assert reduced.total == 3 and reduced.matrix[3, 0] == 1  # raw 1 -> 0 -> 3, raw 0 ignored


def test_the_compat_layer_and_the_accumulator_agree_on_the_030_order():
    rng = np.random.default_rng(3)
    label = rng.integers(0, 7, size=(4, 20, 20))
    label[:, 0, :5] = 255
    pred = rng.integers(0, 6, size=label.shape)
    label_map = {0: 3, 255: 2, 6: 1}
    cm = am.ConfusionMatrix(6, reduce_zero_label=True, label_map=label_map, label_map_on="raw").update(pred, label)
    i, u, p, t = mm.total_intersect_and_union(list(pred), list(label), 6, 255, label_map=label_map,
                                              reduce_zero_label=True)
    np.testing.assert_array_equal(np.diag(cm.matrix), i)
    np.testing.assert_array_equal(cm.matrix.sum(1), t)
    np.testing.assert_array_equal(cm.matrix.sum(0), p)


_DTYPES = [np.uint8, np.int8, np.uint16, np.int16, np.int32, np.uint32, np.int64]


@st.composite
def raw_cases(draw):
    dtype = np.dtype(draw(st.sampled_from(_DTYPES)))
    k = draw(st.integers(2, 6))
    info = np.iinfo(dtype)
    ignore = draw(st.sampled_from([255, None, 0, k - 1, -1]))
    reduce = draw(st.booleans())
    labels = [v for v in (0, 1, 2, 3, 4, 5, 6, 7, 255, 256, 2**20) if info.min <= v <= info.max]
    keys = st.sampled_from([v for v in labels if v < 2**24])
    label_map = draw(st.dictionaries(keys, st.sampled_from([0, 1, k - 1, k, 255, -1]), max_size=4))
    size = draw(st.integers(1, 40))
    target = np.array(draw(st.lists(st.sampled_from(labels), min_size=size, max_size=size)), dtype=dtype)
    pred = np.array(draw(st.lists(st.integers(0, k - 1), min_size=size, max_size=size)), dtype=np.uint8)
    return pred, target, k, ignore, reduce, label_map


@settings(deadline=None)
@given(raw_cases())
def test_property_raw_order_against_the_reference(case):
    pred, target, k, ignore, reduce, label_map = case
    cm = am.ConfusionMatrix(k, ignore_index=ignore, reduce_zero_label=reduce, label_map=label_map,
                            label_map_on="raw")
    try:  # something to keep, where these settings allow it
        cm.update(np.zeros_like(pred[:1]), target[:1])
    except ValueError:
        pass
    before = cm.matrix.copy()
    try:
        expected = reference.confusion_matrix(pred, target, k, ignore_index=ignore, reduce_zero_label=reduce,
                                              label_map=label_map, label_map_on="raw")
    except ValueError:
        with pytest.raises(ValueError):
            cm.update(pred, target)
        assert np.array_equal(cm.matrix, before)  # all-or-nothing
        return
    cm.update(pred, target)
    assert np.array_equal(cm.matrix - before, expected)


@settings(deadline=None)
@given(raw_cases())
def test_property_reference_raw_order_is_mmseg_030_where_mmseg_is_defined(case):
    # mmseg applies pairs one after another, we all at once: the same where no value is also a key.
    # Its ignore is 255 here (its reduction writes 255); labels it would histogram out of range are skipped.
    pred, target, k, _, reduce, label_map = case
    if set(label_map.values()) & set(label_map):
        return
    try:
        ours = reference.confusion_matrix(pred, target, k, ignore_index=255, reduce_zero_label=reduce,
                                          label_map=label_map, label_map_on="raw")
    except ValueError:
        return
    assert np.array_equal(ours, mmseg030_matrix(pred, target, k, 255, label_map, reduce))


def test_far_keys_of_wide_dtypes_go_through_the_sparse_path():
    target = np.array([0, 1, 2**20, 255, 3], dtype=np.int64)
    pred = np.array([2, 0, 1, 1, 2], dtype=np.int64)
    label_map = {2**20: 2, 0: 3, 255: 2}
    cm = am.ConfusionMatrix(3, reduce_zero_label=True, label_map=label_map, label_map_on="raw").update(pred, target)
    assert np.array_equal(cm.matrix, mmseg030_matrix(pred, target, 3, 255, label_map, True))


def test_the_order_travels_with_copies_states_and_image_stats(tmp_path):
    cm = am.ConfusionMatrix(3, reduce_zero_label=True, label_map={0: 1}, label_map_on="raw")
    assert cm.label_map_on == "raw" and cm.copy().label_map_on == "raw"
    back = am.ConfusionMatrix.from_state_dict(cm.state_dict())
    assert back.label_map_on == "raw" and back == cm
    gt = np.array([[0, 1, 2]], np.uint8)
    pred = np.array([[0, 0, 1]], np.uint8)
    assert (back.update(pred, gt).matrix == cm.copy().update(pred, gt).matrix).all()
    plain = am.ConfusionMatrix(3, reduce_zero_label=True, label_map={0: 1})
    assert plain.label_map_on == "reduced" and "label_map_on" not in plain.state_dict()
    with pytest.raises(ValueError, match="different settings"):
        plain.merge(cm)
    stats = am.ImageStats(3, reduce_zero_label=True, label_map=cm.label_map).update(pred, gt)
    assert np.array_equal(stats.matrix, cm.copy().update(pred, gt).matrix)
    by_name = am.ImageStats(3, reduce_zero_label=True, label_map={0: 1}, label_map_on="raw").update(pred, gt)
    assert np.array_equal(by_name.matrix, stats.matrix) and by_name.label_map == cm.label_map
    path = tmp_path / "s.npz"
    stats.save(path)
    assert np.array_equal(am.ImageStats.load(path).update(pred, gt).matrix, 2 * stats.matrix)


def test_bad_order_names_are_refused():
    with pytest.raises(ValueError, match="label_map_on"):
        am.ConfusionMatrix(3, label_map={1: 2}, label_map_on="before")
    with pytest.raises(ValueError, match="label_map_on"):
        reference.confusion_matrix([0], [0], 3, label_map={1: 2}, label_map_on=None)
