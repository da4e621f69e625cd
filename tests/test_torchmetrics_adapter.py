"""The torchmetrics adapter inside a real torchmetrics update/compute cycle."""
from __future__ import annotations

import numpy as np
import pytest

import ade20k_metrics as am

torch = pytest.importorskip("torch")
pytest.importorskip("torchmetrics")
from ade20k_metrics.torchmetrics import SCALARS, SegmentationMetrics  # noqa: E402


def batches(seed=9, k=5):
    g = torch.Generator().manual_seed(seed)
    out = []
    for n, h, w in ((2, 6, 7), (1, 9, 4), (3, 5, 5)):
        logits = torch.randn((n, k, h, w), generator=g)
        target = torch.randint(0, k + 1, (n, h, w), generator=g)
        target[target == k] = 255
        out.append((logits, target))
    return out


def test_hand_computed_cycle():
    metric = SegmentationMetrics(2)
    metric.update(torch.tensor([[0, 1, 1]]), torch.tensor([[0, 1, 0]]))
    metric.update(torch.tensor([[1]]), torch.tensor([[255]]))  # ignored
    out = metric.compute()
    # matrix [[1, 1], [0, 1]]: IoU 1/2 and 1/2, pixel accuracy 2/3
    assert out["miou"].item() == pytest.approx(0.5)
    assert out["aacc"].item() == pytest.approx(2 / 3)
    assert metric.matrix.dtype == torch.int64
    np.testing.assert_array_equal(metric.matrix.numpy(), [[1, 1], [0, 1]])
    metric.reset()
    assert int(metric.matrix.sum()) == 0


def test_logits_and_labels_give_the_reference_matrix():
    k = 5
    metric = SegmentationMetrics(k)
    labels_metric = SegmentationMetrics(k)
    expected = np.zeros((k, k), np.int64)
    for logits, target in batches(k=k):
        metric.update(logits, target)
        labels_metric.update(torch.argmax(logits, dim=1), target)
        expected += am.reference.confusion_matrix(torch.argmax(logits, dim=1).numpy(), target.numpy(), k)
    np.testing.assert_array_equal(metric.matrix.numpy(), expected)
    np.testing.assert_array_equal(labels_metric.matrix.numpy(), expected)
    out = metric.compute()
    assert set(out) == set(SCALARS)
    ref = am.compute_metrics(expected)
    for name in SCALARS:
        np.testing.assert_allclose(out[name].item(), getattr(ref, name), equal_nan=True)


def test_torchmetrics_convention_matches_multiclass_jaccard():
    from torchmetrics.classification import MulticlassJaccardIndex

    k = 5
    ours = SegmentationMetrics(k, convention="torchmetrics")
    theirs = MulticlassJaccardIndex(num_classes=k, average="macro", ignore_index=255)
    for logits, target in batches(seed=11, k=k):
        ours.update(logits, target)
        theirs.update(torch.argmax(logits, dim=1), target)
    assert ours.compute()["miou"].item() == pytest.approx(theirs.compute().item(), abs=1e-6)


def test_forward_returns_batch_value_and_accumulates():
    k = 5
    metric = SegmentationMetrics(k)
    (l1, t1), (l2, t2), _ = batches(k=k)
    batch_value = metric(l1, t1)  # forward: this batch's metrics, and accumulate it
    single = SegmentationMetrics(k)
    single.update(l1, t1)
    assert batch_value["aacc"].item() == pytest.approx(single.compute()["aacc"].item())
    metric(l2, t2)
    m1 = am.reference.confusion_matrix(torch.argmax(l1, 1).numpy(), t1.numpy(), k)
    m2 = am.reference.confusion_matrix(torch.argmax(l2, 1).numpy(), t2.numpy(), k)
    np.testing.assert_array_equal(metric.matrix.numpy(), m1 + m2)


def test_bad_batch_leaves_the_state_unchanged():
    metric = SegmentationMetrics(3)
    metric.update(torch.tensor([0, 1]), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="target has 1 label"):
        metric.update(torch.tensor([0, 1]), torch.tensor([0, 7]))
    np.testing.assert_array_equal(metric.matrix.numpy(), [[1, 0, 0], [0, 1, 0], [0, 0, 0]])


def test_state_is_summed_by_torchmetrics_merge():
    k = 5
    a, b = SegmentationMetrics(k), SegmentationMetrics(k)
    (l1, t1), (l2, t2), _ = batches(k=k)
    a.update(l1, t1)
    b.update(l2, t2)
    a.merge_state(b)
    m1 = am.reference.confusion_matrix(torch.argmax(l1, 1).numpy(), t1.numpy(), k)
    m2 = am.reference.confusion_matrix(torch.argmax(l2, 1).numpy(), t2.numpy(), k)
    np.testing.assert_array_equal(a.matrix.numpy(), m1 + m2)


def _ddp_worker(rank: int, init_file: str, out_dir: str) -> None:
    import datetime
    import os

    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2,
                            timeout=datetime.timedelta(seconds=60))
    try:
        metric = SegmentationMetrics(5)
        logits, target = batches(k=5)[rank]  # each rank sees a different batch
        metric.update(logits, target)
        out = metric.compute()  # torchmetrics syncs the state (sum) before computing
        np.savez(os.path.join(out_dir, f"rank{rank}.npz"), miou=out["miou"].item(),
                 matrix=metric.matrix.numpy())  # state is restored to the local one after compute
    finally:
        dist.destroy_process_group()


def test_torchmetrics_sync_sums_the_matrix_over_two_processes(tmp_path):
    mp = pytest.importorskip("torch.multiprocessing")
    mp.spawn(_ddp_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    local = []
    for r, (logits, target) in enumerate(batches(k=5)[:2]):
        local.append(am.reference.confusion_matrix(torch.argmax(logits, 1).numpy(), target.numpy(), 5))
    expected_miou = am.compute_metrics(local[0] + local[1]).miou
    for r in range(2):
        with np.load(tmp_path / f"rank{r}.npz") as z:
            assert float(z["miou"]) == pytest.approx(expected_miou)
            np.testing.assert_array_equal(z["matrix"], local[r])
