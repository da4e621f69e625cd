"""Metrics: properties every convention must satisfy, the outputs (dict, table), ADE20K groups, errors."""
from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import ade20k_metrics as am
from ade20k_metrics import ade20k

conventions = st.sampled_from(am.CONVENTIONS)


@st.composite
def matrices(draw, max_k=8):
    """Small confusion matrices, often with absent and predicted-only classes."""
    k = draw(st.integers(1, max_k))
    cells = draw(st.lists(st.integers(0, 50), min_size=k * k, max_size=k * k))
    m = np.array(cells, dtype=np.int64).reshape(k, k)
    sparsity = draw(st.lists(st.sampled_from(["keep", "no_gt", "no_pred", "none"]), min_size=k, max_size=k))
    for c, what in enumerate(sparsity):
        if what in ("no_gt", "none"):
            m[c, :] = 0
        if what in ("no_pred", "none"):
            m[:, c] = 0
    return m


def defined(*arrays):
    mask = np.ones(arrays[0].shape, dtype=bool)
    for a in arrays:
        mask &= ~np.isnan(a)
    return mask


@given(matrices(), conventions, st.randoms(use_true_random=False))
def test_invariant_under_a_permutation_of_classes(m, convention, random):
    perm = np.array(random.sample(range(m.shape[0]), m.shape[0]))
    a = am.compute_metrics(m, convention=convention)
    b = am.compute_metrics(m[np.ix_(perm, perm)], convention=convention)
    for name in a.PER_CLASS:
        np.testing.assert_allclose(getattr(b, name), getattr(a, name)[perm], rtol=1e-12, equal_nan=True)
    for name in a.SCALARS:
        np.testing.assert_allclose(getattr(b, name), getattr(a, name), rtol=1e-12, equal_nan=True)


@given(matrices(), conventions)
def test_iou_at_most_min_of_acc_and_precision(m, convention):
    r = am.compute_metrics(m, convention=convention)
    ok = defined(r.iou, r.acc, r.precision)
    assert np.all(r.iou[ok] <= np.minimum(r.acc[ok], r.precision[ok]) + 1e-15)


@given(matrices(), conventions)
def test_dice_is_a_function_of_iou(m, convention):
    r = am.compute_metrics(m, convention=convention)
    ok = defined(r.iou, r.dice)
    # csail adds 1e-10 to IoU's denominator only.
    rtol = 1e-9 if convention == "csail" else 1e-12
    np.testing.assert_allclose(r.dice[ok], 2 * r.iou[ok] / (1 + r.iou[ok]), rtol=rtol, atol=1e-15)


@given(matrices(), conventions)
def test_f1_equals_dice_where_defined(m, convention):
    r = am.compute_metrics(m, convention=convention, beta=1.0)
    ok = defined(r.fscore, r.dice)
    np.testing.assert_allclose(r.fscore[ok], r.dice[ok], rtol=1e-12)


@given(matrices(), conventions, st.floats(0.1, 10))
def test_fscore_is_the_weighted_harmonic_mean_of_precision_and_recall(m, convention, beta):
    r = am.compute_metrics(m, convention=convention, beta=beta)
    ok = defined(r.fscore, r.precision, r.acc) & (r.precision + r.acc > 0)
    p, q = r.precision[ok], r.acc[ok]
    np.testing.assert_allclose(r.fscore[ok], (1 + beta**2) * p * q / (beta**2 * p + q), rtol=1e-12)


@given(matrices(), conventions)
def test_values_are_fractions_and_means_are_nan_means(m, convention):
    r = am.compute_metrics(m, convention=convention)
    for name in r.PER_CLASS:
        a = getattr(r, name)
        assert a.shape == (m.shape[0],)
        assert np.all((a[~np.isnan(a)] >= 0) & (a[~np.isnan(a)] <= 1))
    for name, per_class in [("miou", r.iou), ("macc", r.acc), ("mprecision", r.precision), ("mdice", r.dice),
                            ("mfscore", r.fscore)]:
        values = per_class[~np.isnan(per_class)]
        expected = values.mean() if values.size and m.sum() else np.nan
        np.testing.assert_allclose(getattr(r, name), expected, rtol=1e-12, equal_nan=True)
    assert r.mrecall == r.macc or (np.isnan(r.mrecall) and np.isnan(r.macc))
    np.testing.assert_allclose(r.score, (r.aacc + r.miou) / 2, equal_nan=True)


@given(matrices(), conventions)
def test_which_classes_each_convention_averages(m, convention):
    r = am.compute_metrics(m, convention=convention)
    gt, pred, tp = m.sum(1), m.sum(0), np.diag(m)
    union = gt + pred - tp
    counted_iou = {"mmseg": union > 0, "torchmetrics": union > 0, "detectron2": gt > 0,
                   "csail": np.ones_like(gt, dtype=bool)}[convention]
    counted_acc = {"mmseg": gt > 0, "torchmetrics": union > 0, "detectron2": gt > 0,
                   "csail": np.ones_like(gt, dtype=bool)}[convention]
    np.testing.assert_array_equal(~np.isnan(r.iou), counted_iou)
    np.testing.assert_array_equal(~np.isnan(r.acc), counted_acc)


@given(matrices())
def test_csail_le_mmseg_eq_torchmetrics_le_detectron2(m):
    # Same IoUs, averaged over ever smaller class sets, each dropping only zeros.
    by = {c: am.compute_metrics(m, convention=c).miou for c in am.CONVENTIONS}
    if np.isnan(by["detectron2"]):
        return
    assert by["mmseg"] == by["torchmetrics"]
    assert by["csail"] <= by["mmseg"] + 1e-15
    assert by["mmseg"] <= by["detectron2"] + 1e-15


@given(matrices(), conventions, st.integers(2, 1000))
def test_scaling_all_counts_changes_nothing(m, convention, factor):
    a = am.compute_metrics(m, convention=convention)
    b = am.compute_metrics(m * factor, convention=convention)
    rtol = 1e-9 if convention == "csail" else 1e-12
    for name in a.SCALARS:
        np.testing.assert_allclose(getattr(b, name), getattr(a, name), rtol=rtol, equal_nan=True)


@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4)), min_size=0, max_size=60),
       st.integers(0, 60), conventions)
def test_merge_equals_one_big_update(pairs, cut, convention):
    pred = np.array([p for p, _ in pairs], dtype=np.int64)
    target = np.array([t for _, t in pairs], dtype=np.int64)
    whole = am.ConfusionMatrix(5).update(pred, target)
    first = am.ConfusionMatrix(5).update(pred[:cut], target[:cut])
    second = am.ConfusionMatrix(5).update(pred[cut:], target[cut:])
    merged = first.merge(second).compute(convention=convention)
    direct = whole.compute(convention=convention)
    for name in direct.SCALARS:
        np.testing.assert_array_equal(getattr(merged, name), getattr(direct, name))


def test_fwiou_by_hand():
    # GT 6 px of class 0 (5 right, 1 -> 1), 2 px of class 1 (both right): IoU0 = 5/6, IoU1 = 2/3.
    m = am.compute_metrics([[5, 1], [0, 2]])
    assert m.fwiou == pytest.approx(6 / 8 * 5 / 6 + 2 / 8 * 2 / 3)
    assert m.aacc == pytest.approx(7 / 8)


def test_float_matrices_are_accepted():
    a = am.compute_metrics(np.array([[5, 1], [0, 2]], dtype=np.float32))
    assert a.miou == pytest.approx((5 / 6 + 2 / 3) / 2)


@pytest.mark.parametrize("matrix, exc, match", [
    (np.zeros((2, 3)), ValueError, "square"),
    (np.zeros((0, 0)), ValueError, "square"),
    (np.zeros(4), ValueError, "square"),
    (np.array([[1, -1], [0, 1]]), ValueError, "negative"),
    (np.array([[1.0, np.nan], [0, 1]]), ValueError, "NaN"),
    (np.array([["a", "b"], ["c", "d"]]), TypeError, "dtype"),
])
def test_bad_matrices(matrix, exc, match):
    with pytest.raises(exc, match=match):
        am.compute_metrics(matrix)


@pytest.mark.parametrize("beta, exc", [(0, ValueError), (-1.0, ValueError), (float("nan"), ValueError),
                                       (float("inf"), ValueError), ("2", TypeError), (True, TypeError)])
def test_bad_beta(beta, exc):
    with pytest.raises(exc, match="beta"):
        am.compute_metrics(np.eye(2), beta=beta)


def test_results_are_read_only():
    m = am.compute_metrics([[5, 1], [0, 2]])
    with pytest.raises(ValueError):
        m.iou[0] = 1.0
    with pytest.raises(ValueError):
        m.matrix[0, 0] = 1


def test_to_dict_is_json_with_none_for_nan():
    m = am.compute_metrics([[3, 0, 1, 0], [1, 2, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])
    d = json.loads(json.dumps(m.to_dict(), allow_nan=False))
    assert d["convention"] == "mmseg" and d["beta"] == 1.0 and d["num_classes"] == 4
    assert d["iou"][3] is None and d["acc"][2] is None
    assert d["iou"][0] == pytest.approx(3 / 5)
    assert d["miou"] == pytest.approx(19 / 45) and d["aacc"] == pytest.approx(5 / 7)
    for key in ("miou", "macc", "aacc", "mdice", "mfscore", "mprecision", "mrecall", "fwiou", "score",
                "iou", "acc", "precision", "dice", "fscore"):
        assert key in d


def test_table_names_values_and_dashes():
    m = am.compute_metrics([[3, 0, 1, 0], [1, 2, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])
    text = m.table(names=["wall", "floor", "tree", "sky"])
    lines = text.splitlines()
    wall = next(line for line in lines if " wall " in line)
    assert "0.6000" in wall and "0.7500" in wall
    sky = next(line for line in lines if " sky " in line)
    assert "0.0000" not in sky and sky.count("-") == 5
    assert "0.4222" in text and "mean (mmseg)" in text
    with pytest.raises(ValueError, match="names"):
        m.table(names=["only one"])


def test_table_uses_ade20k_names_for_150_classes():
    matrix = np.eye(150, dtype=np.int64)
    text = am.compute_metrics(matrix).table()
    assert "wall" in text and "flag" in text
    assert len(text.splitlines()) == 150 + 5


def test_group_miou_masks_and_indices():
    m = am.compute_metrics([[3, 0, 1, 0], [1, 2, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])
    assert m.group_miou([True, True, False, False]) == pytest.approx((3 / 5 + 2 / 3) / 2)
    assert m.group_miou(np.array([1, 2])) == pytest.approx((2 / 3 + 0) / 2)
    assert np.isnan(m.group_miou(np.array([3])))
    with pytest.raises(ValueError, match="shape"):
        m.group_miou([True, False])
    with pytest.raises(ValueError, match="indices"):
        m.group_miou(np.array([4]))
    with pytest.raises(TypeError):
        m.group_miou(np.array([0.5]))


def test_ade20k_groups_and_summary():
    groups = ade20k.class_groups()
    assert groups["stuff"].sum() == 35 and groups["things"].sum() == 115
    assert groups["frequent"].sum() == 75 and not np.any(groups["frequent"] & groups["rare"])
    ratio = ade20k.classes().pixel_ratio
    assert ratio[groups["frequent"]].min() >= ratio[groups["rare"]].max()
    assert groups["frequent"][0] and not groups["frequent"][149]  # wall (15.8% of pixels); flag (rare)
    # Every stuff class predicted perfectly, every thing class never right: stuff 1, things 0.
    matrix = np.zeros((150, 150), np.int64)
    stuff = np.flatnonzero(groups["stuff"])
    things = np.flatnonzero(groups["things"])
    matrix[stuff, stuff] = 10
    matrix[things, stuff[0]] = 10
    s = ade20k.summary(am.compute_metrics(matrix))
    assert s["miou_things"] == 0.0
    # stuff[0] also collects every thing's pixels: IoU 10 / (10 + 115 * 10); the other 34 are 1.
    assert s["miou_stuff"] == pytest.approx((34 + 10 / 1160) / 35)
    assert s["miou"] == pytest.approx((34 + 10 / 1160) / 150)
    assert s["convention"] == "mmseg" and s["aacc"] == pytest.approx(350 / 1500)
    assert set(s) == {"convention", "miou", "miou_stuff", "miou_things", "miou_frequent", "miou_rare", "aacc",
                      "score"}
    with pytest.raises(ValueError, match="150"):
        ade20k.summary(am.compute_metrics(np.eye(3)))
    with pytest.raises(TypeError):
        ade20k.summary(matrix)
    with pytest.raises(ValueError):
        ade20k.class_groups(0)


def test_accumulator_compute_passes_convention_and_beta():
    cm = am.ConfusionMatrix(4).update(np.array([0, 2, 1, 0, 1]), np.array([0, 0, 1, 1, 1]))
    # (gt, pred): (0,0) (0,2) (1,1) (1,0) (1,1): tp [1, 2, 0, 0]; gt [2, 3, 0, 0]; pred [2, 2, 1, 0]
    m = cm.compute(convention="detectron2", beta=2.0)
    assert m.convention == "detectron2" and m.beta == 2.0
    assert m.miou == pytest.approx((1 / 3 + 2 / 3) / 2)


def test_table_writes_large_counts_in_full():
    text = am.compute_metrics(np.array([[12_345_678, 1], [0, 2]])).table()
    assert "12345678" in text and "12345679" in text
