"""ade20k_metrics.mmseg.IoUMetric against mmseg 1.x IoUMetric's computation, through mmengine.

mmseg itself needs a compiled mmcv, so its computation is re-stated here from
mmseg/evaluation/metrics/iou_metric.py (1.x): per sample, the label mask
``label != ignore_index``, then float32 ``torch.histc(x, bins=K, min=0,
max=K-1)`` of the intersection, the prediction and the label; the union
``pred + label - intersect``; the histograms summed over samples in float32;
per class IoU = I/U, Acc = I/L, Dice = 2I/(P+L), Precision = I/P, Recall =
I/L, Fscore = (1+b^2)PR/(b^2 P+R), all float32; ``np.nan_to_num`` when asked,
then ``np.round(np.nanmean(v) * 100, 2)`` under the keys "aAcc" and "m" + name.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

torch = pytest.importorskip("torch")
pytest.importorskip("mmengine")

from mmengine.evaluator import Evaluator  # noqa: E402
from mmengine.registry import Registry  # noqa: E402

from ade20k_metrics.integrations import mmseg as am_mmseg  # noqa: E402
from ade20k_metrics.mmseg import IoUMetric  # noqa: E402


def _mmseg_1x(preds, labels, k, ignore_index=255, metrics=("mIoU",), nan_to_num=None, beta=1):
    """mmseg 1.x IoUMetric's numbers, re-stated in torch float32 (see the module docstring)."""
    sums = [torch.zeros(k, dtype=torch.float32) for _ in range(4)]
    for p, t in zip(preds, labels):
        p, t = torch.as_tensor(p), torch.as_tensor(t).to(torch.as_tensor(p))
        keep = t != ignore_index
        p, t = p[keep], t[keep]
        hist = [torch.histc(x.float(), bins=k, min=0, max=k - 1) for x in (p[p == t], p, t)]
        i, pr, la = hist
        for s, a in zip(sums, (i, pr + la - i, pr, la)):
            s += a
    i, u, pr, la = sums
    ret = {"aAcc": (i.sum() / la.sum()).numpy()}
    for m in metrics:
        if m == "mIoU":
            ret["IoU"], ret["Acc"] = (i / u).numpy(), (i / la).numpy()
        elif m == "mDice":
            ret["Dice"], ret["Acc"] = (2 * i / (pr + la)).numpy(), (i / la).numpy()
        else:
            prec, rec = i / pr, i / la
            ret["Fscore"] = ((1 + beta ** 2) * prec * rec / (beta ** 2 * prec + rec)).numpy()
            ret["Precision"], ret["Recall"] = prec.numpy(), rec.numpy()
    if nan_to_num is not None:
        ret = {key: np.nan_to_num(v, nan=nan_to_num) for key, v in ret.items()}
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # nanmean of all-NaN
        for key, v in ret.items():
            out[key if key == "aAcc" else "m" + key] = np.round(np.nanmean(v) * 100, 2)
    return out


def _samples(preds, labels):
    """What mmengine's Evaluator hands a metric: dicts of {'data': (1, H, W) tensor}."""
    return [{"pred_sem_seg": {"data": torch.as_tensor(p)[None]},
             "gt_sem_seg": {"data": torch.as_tensor(t)[None]}} for p, t in zip(preds, labels)]


def _run(metric: IoUMetric, preds, labels, k, size=None, batch=2):
    metric.dataset_meta = {"classes": [f"c{j}" for j in range(k)]}
    samples = _samples(preds, labels)
    for b in range(0, len(samples), batch):
        metric.process({}, samples[b:b + batch])
    return metric.evaluate(len(samples) if size is None else size)


def _random(seed, n=6, k=7, shape=(12, 9), ignore=255):
    rng = np.random.default_rng(seed)
    preds = [rng.integers(0, k, size=shape) for _ in range(n)]
    labels = [np.where(rng.random(shape) < 0.15, ignore, rng.integers(0, k - 1, size=shape)) for _ in range(n)]
    return preds, labels


@pytest.mark.parametrize("iou_metrics", [["mIoU"], ["mDice"], ["mFscore"], ["mIoU", "mDice", "mFscore"]])
@pytest.mark.parametrize("nan_to_num", [None, 0, -1])
def test_same_numbers_as_mmseg_1x(iou_metrics, nan_to_num):
    preds, labels = _random(0)
    got = _run(IoUMetric(iou_metrics=iou_metrics, nan_to_num=nan_to_num), preds, labels, 7)
    want = _mmseg_1x(preds, labels, 7, metrics=iou_metrics, nan_to_num=nan_to_num)
    assert list(got) == list(want)
    for key, value in want.items():
        # mmseg's values are float32; ours, rounded in float64, are the same numbers as float32.
        assert np.float32(got[key]) == value or (np.isnan(got[key]) and np.isnan(value)), key
        assert isinstance(got[key], float)


def test_result_keys_and_nan_to_num_before_the_mean():
    # Class 2 never occurs and is never predicted: NaN, dropped by the mean unless nan_to_num fills it.
    preds = [np.array([[0, 1], [1, 0]])]
    labels = [np.array([[0, 1], [0, 0]])]
    plain = _run(IoUMetric(iou_metrics=["mIoU", "mDice", "mFscore"]), preds, labels, 3)
    assert list(plain) == ["aAcc", "mIoU", "mAcc", "mDice", "mFscore", "mPrecision", "mRecall"]
    # IoU: class 0 = 2/3, class 1 = 1/2 -> mean 58.33; aAcc = 3/4.
    assert plain["aAcc"] == 75.0 and plain["mIoU"] == 58.33
    filled = _run(IoUMetric(nan_to_num=0), preds, labels, 3)
    assert filled["mIoU"] == round((2 / 3 + 1 / 2) / 3 * 100, 2) == 38.89


def test_evaluate_size_drops_the_padding():
    preds, labels = _random(1, n=5)
    exact = _run(IoUMetric(iou_metrics=["mIoU", "mFscore"]), preds, labels, 7)
    # A sampler padding the last batch repeats the first samples; evaluate(len(dataset)) drops them.
    padded = _run(IoUMetric(iou_metrics=["mIoU", "mFscore"]), preds + preds[:3], labels + labels[:3], 7, size=5)
    counted = _run(IoUMetric(iou_metrics=["mIoU", "mFscore"]), preds + preds[:3], labels + labels[:3], 7)
    assert padded == exact
    assert counted != exact  # counted with the repeats, the numbers move: the test can tell


def test_one_small_entry_per_sample():
    preds, labels = _random(2, n=3)
    metric = IoUMetric()
    metric.dataset_meta = {"classes": list("abcdefg")}
    metric.process({}, _samples(preds, labels))
    assert len(metric.results) == 3
    for entry, p, t in zip(metric.results, preds, labels):
        assert len(entry) == 4 and all(a.shape == (7,) and a.dtype == np.int64 for a in entry)
        keep = t != 255
        np.testing.assert_array_equal(entry[3], np.bincount(t[keep], minlength=7))
        np.testing.assert_array_equal(entry[2], np.bincount(p[keep], minlength=7))


def test_through_mmengines_evaluator_and_ignore_index():
    preds, labels = _random(3, ignore=0)
    evaluator = Evaluator(IoUMetric(ignore_index=0, iou_metrics=["mIoU"], prefix="val"))
    evaluator.dataset_meta = {"classes": [str(j) for j in range(7)]}
    samples = _samples(preds, labels)
    evaluator.process(samples[:4])
    evaluator.process(samples[4:])
    got = evaluator.evaluate(len(samples))
    want = _mmseg_1x(preds, labels, 7, ignore_index=0)
    assert sorted(got) == ["val/aAcc", "val/mAcc", "val/mIoU"]
    assert np.float32(got["val/mIoU"]) == want["mIoU"] and np.float32(got["val/aAcc"]) == want["aAcc"]


def test_registered_under_its_own_name_only():
    from mmengine.registry import METRICS

    assert am_mmseg._default_registry().get("ADE20KIoUMetric") is IoUMetric
    built = METRICS.build(dict(type="ADE20KIoUMetric", iou_metrics=["mDice"]))
    assert isinstance(built, IoUMetric) and built.metrics == ["mDice"]

    class TheirIoUMetric:  # stands for mmseg's own
        pass

    fresh = Registry("metric")
    fresh.register_module(name="IoUMetric", module=TheirIoUMetric)
    assert am_mmseg.register(fresh) is True
    assert fresh.get("IoUMetric") is TheirIoUMetric and fresh.get("ADE20KIoUMetric") is IoUMetric
    assert am_mmseg.register(fresh) is True  # again: a no-op
    taken = Registry("metric")
    taken.register_module(name="ADE20KIoUMetric", module=TheirIoUMetric)
    assert am_mmseg.register(taken) is False and taken.get("ADE20KIoUMetric") is TheirIoUMetric


def test_errors_leave_the_results_unchanged():
    preds, labels = _random(4, n=4)
    metric = IoUMetric()
    metric.dataset_meta = {"classes": list("abcdefg")}
    metric.process({}, _samples(preds[:2], labels[:2]))
    bad = [labels[2].copy(), labels[3]]
    bad[1] = bad[1].copy()
    bad[1][0, 0] = 99
    with pytest.raises(ValueError, match="outside"):
        metric.process({}, _samples(preds[2:], bad))
    assert len(metric.results) == 2  # the batch is added whole or not at all
    with pytest.raises(KeyError, match="not supported"):
        IoUMetric(iou_metrics=["mIoU", "mAP"])


def test_format_only_writes_the_predictions(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    metric = IoUMetric(output_dir=str(tmp_path / "out"), format_only=True)
    metric.dataset_meta = {"classes": list("abc")}
    pred = np.array([[0, 2], [1, 1]])
    metric.process({}, [{"pred_sem_seg": {"data": torch.as_tensor(pred)[None]}, "img_path": "x/ADE_1.jpg",
                         "reduce_zero_label": True}])
    assert metric.results == []
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out" / "ADE_1.png")), pred + 1)
    assert metric.compute_metrics([]) == {}


@given(st.integers(2, 6), st.integers(0, 2**32 - 1), st.sampled_from([None, 0]))
def test_property_against_mmseg_1x(k, seed, nan_to_num):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 4))
    preds = [rng.integers(0, k, size=(int(rng.integers(1, 5)), 4)) for _ in range(n)]
    labels = [np.where(rng.random(p.shape) < 0.2, 255, rng.integers(0, k, size=p.shape)) for p in preds]
    metrics = ["mIoU", "mDice", "mFscore"]
    got = _run(IoUMetric(iou_metrics=metrics, nan_to_num=nan_to_num), preds, labels, k)
    want = _mmseg_1x(preds, labels, k, metrics=metrics, nan_to_num=nan_to_num)
    assert list(got) == list(want)
    for key, value in want.items():
        if np.isnan(value):
            assert np.isnan(got[key]), key
        else:  # equal up to one unit of the last rounded digit (float32 vs float64 near a boundary)
            assert abs(got[key] - float(value)) <= 0.01 + 1e-4, key
