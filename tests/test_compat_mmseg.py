"""compat.mmseg: mmseg 0.30's functional metrics, held against their definition and mmseg's own test facts.

The oracle (``_definition``) is the textbook computation from a bincount
confusion matrix, written here independently of the package; the cases
marked "mmseg test" are the inputs and assertions of mmseg 0.30's
tests/test_metrics.py, re-stated.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ade20k_metrics.compat import mmseg as mm


def _definition(results, labels, k, ignore_index, beta=1.0):
    """aAcc, per-class IoU/Acc/Dice/Precision/Recall/Fscore from a bincount confusion matrix (float64)."""
    total = np.zeros((k, k), dtype=np.float64)
    for p, t in zip(results, labels):
        keep = t != ignore_index
        total += np.bincount(k * t[keep].astype(np.int64) + p[keep], minlength=k * k).reshape(k, k)
    tp, rows, cols = np.diag(total), total.sum(1), total.sum(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision, recall = tp / cols, tp / rows
        return {
            "aAcc": tp.sum() / total.sum(),
            "IoU": tp / (rows + cols - tp),
            "Acc": recall,
            "Dice": 2 * tp / (rows + cols),
            "Precision": precision,
            "Recall": recall,
            "Fscore": (1 + beta ** 2) * precision * recall / (beta ** 2 * precision + recall),
        }


def _random_case(seed, k=19, size=(10, 30, 30), ignore=255):
    rng = np.random.default_rng(seed)
    results = rng.integers(0, k, size=size)
    label = rng.integers(0, k, size=size)
    label[:, 2, 5:10] = ignore  # mmseg test: a stripe of ignored pixels
    return results, label


def test_eval_metrics_against_the_definition():
    # mmseg test: (10, 30, 30) maps, 19 classes, every metric alone and jointly.
    results, label = _random_case(0)
    ref = _definition(results, label, 19, 255)
    for metrics, keys in [("mIoU", ["aAcc", "IoU", "Acc"]), ("mDice", ["aAcc", "Dice", "Acc"]),
                          ("mFscore", ["aAcc", "Fscore", "Precision", "Recall"]),
                          (["mIoU", "mDice", "mFscore"], ["aAcc", "IoU", "Acc", "Dice", "Fscore", "Precision", "Recall"]),
                          (["mDice", "mIoU"], ["aAcc", "Dice", "Acc", "IoU"])]:
        ret = mm.eval_metrics(results, label, 19, 255, metrics=metrics)
        assert list(ret) == keys, metrics
        assert ret["aAcc"] == ref["aAcc"]  # mmseg test: exact equality
        for key in keys[1:]:
            np.testing.assert_allclose(ret[key], ref[key], rtol=1e-12, err_msg=key)
            assert ret[key].shape == (19,) and ret[key].dtype == np.float64


def test_mean_functions_are_eval_metrics_with_one_metric():
    results, label = _random_case(1)
    ref = _definition(results, label, 19, 255, beta=2.0)
    iou = mm.mean_iou(results, label, 19, 255)
    dice = mm.mean_dice(results, label, 19, 255)
    fscore = mm.mean_fscore(results, label, 19, 255, beta=2)
    assert list(iou) == ["aAcc", "IoU", "Acc"] and list(dice) == ["aAcc", "Dice", "Acc"]
    assert list(fscore) == ["aAcc", "Fscore", "Precision", "Recall"]
    np.testing.assert_allclose(iou["IoU"], ref["IoU"], rtol=1e-12)
    np.testing.assert_allclose(dice["Dice"], ref["Dice"], rtol=1e-12)
    np.testing.assert_allclose(fscore["Fscore"], ref["Fscore"], rtol=1e-12)
    np.testing.assert_allclose(mm.mean_fscore(results, label, 19, 255)["Fscore"],
                               _definition(results, label, 19, 255)["Fscore"], rtol=1e-12)


def test_nan_to_num_for_classes_that_never_occur():
    # mmseg test: predictions in 0..4, labels in 0..3, 19 classes; nan_to_num=-1 fills the absent ones.
    rng = np.random.default_rng(2)
    results, label = rng.integers(0, 5, size=(10, 30, 30)), rng.integers(0, 4, size=(10, 30, 30))
    ret = mm.eval_metrics(results, label, 19, 255, metrics=["mDice", "mIoU", "mFscore"], nan_to_num=-1)
    for key in ("Acc", "Dice", "IoU", "Precision", "Recall", "Fscore"):
        assert ret[key][-1] == -1, key
    assert ret["IoU"][4] == 0 and ret["Precision"][4] == 0  # predicted, never in the ground truth
    plain = mm.mean_iou(results, label, 19, 255)
    assert np.isnan(plain["IoU"][-1]) and np.isnan(plain["Acc"][-1])
    # aAcc: a 0-d array without nan_to_num, the scalar np.nan_to_num returns with it (as mmseg).
    assert isinstance(plain["aAcc"], np.ndarray) and plain["aAcc"].shape == ()
    assert isinstance(ret["aAcc"], np.float64)


def test_histc_bin_edge_case():
    # mmseg test: 59 classes, all predicted 31, labels 0..58: no IoU may be NaN (every class is in the GT).
    results = np.array([np.repeat(31, 59)])
    label = np.array([np.arange(59)])
    ret = mm.eval_metrics(results, label, 59, ignore_index=255, metrics="mIoU")
    assert not np.any(np.isnan(ret["IoU"]))
    expected = np.zeros(59)
    expected[31] = 1 / 59  # class 31: one hit; union = 59 predictions
    np.testing.assert_allclose(ret["IoU"], expected, rtol=1e-15)


def test_intersect_and_union_by_hand():
    pred = np.array([[0, 1, 1], [2, 2, 0]])
    label = np.array([[0, 1, 2], [2, 255, 1]])
    # Evaluated (gt, pred): (0,0) (1,1) (2,1) (2,2) (1,0).
    i, u, p, t = mm.intersect_and_union(pred, label, 3, 255)
    np.testing.assert_array_equal(i, [1, 1, 1])
    np.testing.assert_array_equal(p, [2, 2, 1])
    np.testing.assert_array_equal(t, [1, 2, 2])
    np.testing.assert_array_equal(u, [2, 3, 2])
    assert all(a.dtype == np.float64 for a in (i, u, p, t))


def test_reduce_zero_label_and_label_map_in_the_030_order():
    # 0.30: label_map first, then 0 -> ignored, k -> k-1 (255 stays ignored).
    label = np.array([[0, 1, 2], [3, 255, 5]], dtype=np.uint8)
    pred = np.array([[9, 0, 1], [0, 9, 4]])
    i, u, p, t = mm.intersect_and_union(pred, label, 5, 255, reduce_zero_label=True)
    # Evaluated (gt, pred): (0,0) (1,1) (2,0) (4,4).
    np.testing.assert_array_equal(t, [1, 1, 1, 0, 1])
    np.testing.assert_array_equal(i, [1, 1, 0, 0, 1])
    np.testing.assert_array_equal(p, [2, 1, 0, 0, 1])
    # label_map {5: 0} is applied before the reduction, so those pixels are ignored too.
    i2, _, p2, t2 = mm.intersect_and_union(pred, label, 5, 255, label_map={5: 0}, reduce_zero_label=True)
    np.testing.assert_array_equal(t2, [1, 1, 1, 0, 0])
    np.testing.assert_array_equal(p2, [2, 1, 0, 0, 0])
    np.testing.assert_array_equal(i2, [1, 1, 0, 0, 0])


def test_label_map_is_applied_at_once_not_chained():
    # mmseg 0.30 chains {1: 2, 2: 1} into "everything 1"; here it is the swap it says.
    label = np.array([1, 2, 2])
    pred = np.array([2, 1, 1])
    i, _, _, t = mm.intersect_and_union(pred, label, 3, 255, label_map={1: 2, 2: 1})
    np.testing.assert_array_equal(t, [0, 2, 1])
    np.testing.assert_array_equal(i, [0, 2, 1])


def test_the_callers_arrays_are_not_modified():
    rng = np.random.default_rng(3)
    label = rng.integers(0, 6, size=(4, 8, 8)).astype(np.uint8)
    label[:, 0, :] = 255
    pred = rng.integers(0, 5, size=label.shape)
    before_label, before_pred = label.copy(), pred.copy()
    first = mm.eval_metrics(pred, label, 5, 255, label_map={3: 4}, reduce_zero_label=True)
    second = mm.eval_metrics(pred, label, 5, 255, label_map={3: 4}, reduce_zero_label=True)
    np.testing.assert_array_equal(label, before_label)
    np.testing.assert_array_equal(pred, before_pred)
    np.testing.assert_array_equal(first["IoU"], second["IoU"])


def test_pre_eval_to_metrics_equals_eval_metrics():
    results, label = _random_case(4)
    pre = [mm.intersect_and_union(r, t, 19, 255) for r, t in zip(results, label)]
    a = mm.pre_eval_to_metrics(pre, metrics=["mIoU", "mFscore"], beta=2)
    b = mm.eval_metrics(results, label, 19, 255, metrics=["mIoU", "mFscore"], beta=2)
    assert list(a) == list(b)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])


def test_pre_eval_to_metrics_takes_mmseg_torch_tuples():
    torch = pytest.importorskip("torch")
    results, label = _random_case(5)
    ref = _definition(results, label, 19, 255)
    # mmseg's pre_eval entries: float32 torch histograms (torch.histc) per image.
    pre = []
    for r, t in zip(results, label):
        keep = t != 255
        r, t = r[keep], t[keep]
        i = torch.histc(torch.from_numpy(r[r == t]).float(), bins=19, min=0, max=18)
        p = torch.histc(torch.from_numpy(r).float(), bins=19, min=0, max=18)
        g = torch.histc(torch.from_numpy(t).float(), bins=19, min=0, max=18)
        pre.append((i, p + g - i, p, g))
    ret = mm.pre_eval_to_metrics(pre, metrics="mIoU")
    np.testing.assert_allclose(ret["IoU"], ref["IoU"], rtol=1e-12)
    assert ret["aAcc"] == pytest.approx(ref["aAcc"], rel=1e-15)


def test_torch_tensor_maps():
    torch = pytest.importorskip("torch")
    results, label = _random_case(6, size=(3, 20, 20))
    a = mm.eval_metrics(torch.from_numpy(results), torch.from_numpy(label), 19, 255)
    b = mm.eval_metrics(results, label, 19, 255)
    np.testing.assert_array_equal(a["IoU"], b["IoU"])


def test_filename_inputs(tmp_path):
    # mmseg test: predictions saved as .npy, labels as PNG images.
    Image = pytest.importorskip("PIL.Image")
    results, label = _random_case(7, size=(3, 30, 30))
    pred_files, label_files = [], []
    for n, (r, t) in enumerate(zip(results, label)):
        pred_files.append(str(tmp_path / f"pred-{n}.npy"))
        np.save(pred_files[-1], r)
        label_files.append(tmp_path / f"label-{n}.png")
        Image.fromarray(t.astype(np.uint8)).save(label_files[-1])
    ret = mm.eval_metrics(pred_files, label_files, 19, 255, metrics="mIoU")
    ref = _definition(results, label, 19, 255)
    assert ret["aAcc"] == ref["aAcc"]
    np.testing.assert_allclose(ret["IoU"], ref["IoU"], rtol=1e-12)


def test_gt_seg_maps_may_be_a_generator():
    results, label = _random_case(8, size=(4, 10, 10))
    ret = mm.eval_metrics(list(results), (t for t in label), 19, 255)
    np.testing.assert_allclose(ret["IoU"], _definition(results, label, 19, 255)["IoU"], rtol=1e-12)


def test_errors():
    results, label = _random_case(9, size=(3, 10, 10))
    with pytest.raises(KeyError, match="not supported"):
        mm.eval_metrics(results, label, 19, 255, metrics=["mIoU", "mAP"])
    with pytest.raises(ValueError, match="differ in length"):
        mm.eval_metrics(results, label[:2], 19, 255)
    with pytest.raises(ValueError, match="differ in length"):
        mm.eval_metrics(results[:2], label, 19, 255)
    bad = label.copy()
    bad[0, 0, 0] = 40
    with pytest.raises(ValueError, match="outside"):
        mm.eval_metrics(results, bad, 19, 255)
    with pytest.raises(TypeError):
        mm.eval_metrics(results.astype(np.float32), label, 19, 255)
    with pytest.raises(ValueError, match="empty"):
        mm.pre_eval_to_metrics([])
    with pytest.raises(ValueError, match="intersect, union"):
        mm.pre_eval_to_metrics([(np.ones(3), np.ones(3))])


@given(st.integers(1, 6), st.integers(0, 2**32 - 1), st.booleans())
def test_property_against_the_definition(k, seed, with_ignore):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 4))
    results = [rng.integers(0, k, size=(int(rng.integers(1, 6)), 5)) for _ in range(n)]
    labels = [rng.integers(0, k, size=r.shape) for r in results]
    if with_ignore:
        for t in labels:
            t[rng.random(t.shape) < 0.3] = 255
    ret = mm.eval_metrics(results, labels, k, 255, metrics=["mIoU", "mDice", "mFscore"])
    ref = _definition(results, labels, k, 255)
    for key, value in ref.items():
        np.testing.assert_allclose(ret[key], value, rtol=1e-12, equal_nan=True, err_msg=key)
