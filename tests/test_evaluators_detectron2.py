"""ade20k_metrics.detectron2.SemSegEvaluator against detectron2's SemSegEvaluator computation.

detectron2 is not installed here; its computation is re-stated from
detectron2/evaluation/sem_seg_evaluation.py: per image the argmax over the
class axis of outputs["sem_seg"], ground truth from the file with ignored
pixels moved to class K, a (K+1, K+1) bincount of (K+1) * pred + gt (rows =
prediction, columns = ground truth); then, on the K x K part, acc = tp / gt
pixels and IoU = tp / (gt + pred - tp) for classes with ground-truth pixels
(NaN otherwise), mIoU / mACC their means, fwIoU = sum IoU * gt share, pACC =
sum tp / sum gt; everything times 100, keys mIoU, fwIoU, IoU-*, mACC, pACC, ACC-*.
"""
from __future__ import annotations

import datetime
import os
import sys

import numpy as np
import pytest

from ade20k_metrics.detectron2 import SemSegEvaluator

Image = pytest.importorskip("PIL.Image")

K = 5
NAMES = ["wall", "floor", "tree", "sky", "car"]


def _detectron2(preds, gts, k, ignore):
    conf = np.zeros((k + 1, k + 1), dtype=np.int64)
    for p, g in zip(preds, gts):
        g = np.where(g == ignore, k, g).astype(np.int64)
        conf += np.bincount((k + 1) * p.reshape(-1).astype(np.int64) + g.reshape(-1),
                            minlength=(k + 1) ** 2).reshape(k + 1, k + 1)
    tp = conf.diagonal()[:-1].astype(float)
    gt_px = conf[:-1, :-1].sum(axis=0).astype(float)
    pred_px = conf[:-1, :-1].sum(axis=1).astype(float)
    present = gt_px > 0
    acc = np.where(present, tp / np.where(present, gt_px, 1), np.nan)
    iou = np.where(present, tp / np.where(present, gt_px + pred_px - tp, 1), np.nan)
    out = {"mIoU": 100 * iou[present].mean(), "fwIoU": 100 * np.sum(iou[present] * gt_px[present] / gt_px.sum())}
    out.update({f"IoU-{n}": 100 * iou[i] for i, n in enumerate(NAMES[:k])})
    out.update({"mACC": 100 * acc[present].mean(), "pACC": 100 * tp.sum() / gt_px.sum()})
    out.update({f"ACC-{n}": 100 * acc[i] for i, n in enumerate(NAMES[:k])})
    return out


def _dataset(tmp_path, n=4, seed=0, ignore=255):
    rng = np.random.default_rng(seed)
    table, inputs, scores, gts = {}, [], [], []
    for i in range(n):
        h, w = int(rng.integers(3, 9)), int(rng.integers(3, 9))
        gt = rng.integers(0, K - 1, size=(h, w)).astype(np.uint8)  # class 4 ("car") never in the GT
        gt[rng.random((h, w)) < 0.2] = ignore
        path = tmp_path / f"gt{i}.png"
        Image.fromarray(gt).save(path)
        table[f"img{i}.jpg"] = str(path)
        inputs.append({"file_name": f"img{i}.jpg", "height": h, "width": w})
        scores.append(rng.standard_normal((K, h, w)).astype(np.float32))
        gts.append(gt)
    return table, inputs, scores, gts


def _close(got: dict, want: dict):
    assert list(got) == list(want)
    for key, value in want.items():
        np.testing.assert_allclose(got[key], value, rtol=1e-12, equal_nan=True, err_msg=key)


def test_same_numbers_as_detectron2(tmp_path):
    table, inputs, scores, gts = _dataset(tmp_path)
    ev = SemSegEvaluator(num_classes=K, ignore_label=255, class_names=NAMES, input_file_to_gt_file=table,
                         distributed=False)
    ev.reset()
    ev.process(inputs[:2], [{"sem_seg": s} for s in scores[:2]])
    ev.process(inputs[2:], [{"sem_seg": s} for s in scores[2:]])
    got = ev.evaluate()
    assert list(got) == ["sem_seg"]
    want = _detectron2([s.argmax(0) for s in scores], gts, K, 255)
    _close(got["sem_seg"], want)
    assert np.isnan(got["sem_seg"]["IoU-car"]) and np.isnan(got["sem_seg"]["ACC-car"])  # not in the GT


def test_torch_scores_of_every_dtype(tmp_path):
    torch = pytest.importorskip("torch")
    table, inputs, scores, gts = _dataset(tmp_path, seed=1)
    for dtype in (torch.float32, torch.float16, torch.bfloat16, torch.float64):
        ev = SemSegEvaluator(num_classes=K, class_names=NAMES, input_file_to_gt_file=table, distributed=False)
        outs = [{"sem_seg": torch.from_numpy(s).to(dtype)} for s in scores]
        ev.process(inputs, outs)
        want = _detectron2([o["sem_seg"].argmax(dim=0).numpy() for o in outs], gts, K, 255)
        _close(ev.evaluate()["sem_seg"], want)


def test_reset_and_default_names(tmp_path):
    table, inputs, scores, gts = _dataset(tmp_path, seed=2)
    ev = SemSegEvaluator(num_classes=K, input_file_to_gt_file=table, distributed=False)
    ev.process(inputs, [{"sem_seg": s} for s in scores])
    ev.reset()
    ev.process(inputs[:1], [{"sem_seg": scores[0]}])
    res = ev.evaluate()["sem_seg"]
    assert "IoU-0" in res and "ACC-4" in res
    want = _detectron2([scores[0].argmax(0)], gts[:1], K, 255)
    np.testing.assert_allclose(res["mIoU"], want["mIoU"], rtol=1e-12)


def test_errors_are_clear_and_leave_the_counts(tmp_path):
    table, inputs, scores, gts = _dataset(tmp_path, seed=3)
    ev = SemSegEvaluator(num_classes=K, input_file_to_gt_file=table, distributed=False)
    ev.process(inputs[:1], [{"sem_seg": scores[0]}])
    before = ev.evaluate()["sem_seg"]
    bad = tmp_path / "bad.png"
    g = gts[1].copy()
    g[0, 0] = 7
    Image.fromarray(g).save(bad)
    ev.input_file_to_gt_file = {**table, "img1.jpg": str(bad)}
    with pytest.raises(ValueError, match="outside"):
        ev.process(inputs[2:3] + inputs[1:2], [{"sem_seg": scores[2]}, {"sem_seg": scores[1]}])
    _close(ev.evaluate()["sem_seg"], before)  # the good image of the failed batch was not added
    with pytest.raises(KeyError, match="no ground-truth file"):
        ev.process([{"file_name": "unknown.jpg"}], [{"sem_seg": scores[0]}])
    with pytest.raises(ValueError, match="num_classes or class_names"):
        SemSegEvaluator(input_file_to_gt_file=table)
    with pytest.raises(ValueError, match="input_file_to_gt_file"):
        SemSegEvaluator(num_classes=3)
    with pytest.raises(ValueError, match="class names"):
        SemSegEvaluator(num_classes=3, class_names=["a"], input_file_to_gt_file=table)


def test_no_detectron2_import_without_a_dataset_name(tmp_path):
    table, *_ = _dataset(tmp_path, n=1)
    SemSegEvaluator(num_classes=K, input_file_to_gt_file=table)
    assert "detectron2" not in sys.modules


# -- distributed: two processes, gloo -----------------------------------------------------------------

def _worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=60))
    try:
        from pathlib import Path

        own = Path(out_dir) / f"files{rank}"  # each rank writes its own copy of the files
        own.mkdir()
        table, inputs, scores, _ = _dataset(own, n=5, seed=4)
        ev = SemSegEvaluator(num_classes=K, class_names=NAMES, input_file_to_gt_file=table)
        mine = range(rank, 5, world)
        ev.process([inputs[i] for i in mine], [{"sem_seg": scores[i]} for i in mine])
        res = ev.evaluate()
        np.save(os.path.join(out_dir, f"rank{rank}.npy"),
                np.array([np.nan] if res is None else [res["sem_seg"]["mIoU"], res["sem_seg"]["pACC"]]))
    finally:
        dist.destroy_process_group()


def test_distributed_gathers_on_the_main_rank(tmp_path):
    torch = pytest.importorskip("torch")
    dist = pytest.importorskip("torch.distributed")
    if not dist.is_available():
        pytest.skip("torch.distributed is not available")
    import torch.multiprocessing as mp

    torch.multiprocessing.set_sharing_strategy("file_system")
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    _, _, scores, gts = _dataset(tmp_path, n=5, seed=4)
    want = _detectron2([s.argmax(0) for s in scores], gts, K, 255)
    main, other = np.load(tmp_path / "rank0.npy"), np.load(tmp_path / "rank1.npy")
    np.testing.assert_allclose(main, [want["mIoU"], want["pACC"]], rtol=1e-12)
    assert np.isnan(other).all()  # detectron2: only the main process returns results
