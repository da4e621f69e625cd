"""ConfusionMatrix.sync over torch.distributed: two processes, gloo backend, CPU."""
from __future__ import annotations

import datetime
import os

import numpy as np
import pytest

import ade20k_metrics as am

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")
if not dist.is_available():
    pytest.skip("torch.distributed is not available", allow_module_level=True)

K = 4
N_SAMPLES = 5  # odd: DistributedSampler over 2 ranks repeats one sample
SHAPES = [(3, 4), (5, 2), (2, 2), (4, 6), (1, 3)]


def sample(index: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic (pred, target) of dataset item `index`; sizes differ, some pixels ignored."""
    rng = np.random.default_rng(100 + index)
    shape = SHAPES[index]
    target = rng.integers(0, K + 1, shape).astype(np.uint8)
    target[target == K] = 255
    pred = rng.integers(0, K, shape).astype(np.int64)
    return pred, target


def reference_matrix(indices) -> np.ndarray:
    return sum(am.reference.confusion_matrix(*sample(i)[::1], K) for i in indices)


def _worker(rank: int, world: int, init_file: str, out_dir: str, mode: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=60))
    try:
        sampler = torch.utils.data.DistributedSampler(range(N_SAMPLES), num_replicas=world, rank=rank,
                                                      shuffle=False)
        indices = list(sampler)
        cm = am.ConfusionMatrix(K)
        result = {"indices": np.array(indices)}
        if mode == "plain":
            for i in indices:
                cm.update(*sample(i))
            cm.sync()
        elif mode == "dedup":
            # Mixed ways of passing samples: one by one, then a list of maps of different sizes.
            cm.update_samples(indices[0], *sample(indices[0]))
            rest = indices[1:]
            cm.update_samples(torch.tensor(rest), [sample(i)[0] for i in rest], [sample(i)[1] for i in rest])
            cm.sync(dataset_size=N_SAMPLES)
        elif mode == "missing":
            for i in indices:
                if i != 3:  # rank 1 never counts index 3
                    cm.update_samples(i, *sample(i))
            before = cm.matrix.copy()
            try:
                cm.sync(dataset_size=N_SAMPLES)
                result["error"] = np.array("")
            except ValueError as e:
                result["error"] = np.array(str(e))
            result["unchanged"] = np.array(np.array_equal(before, cm.matrix))
        elif mode == "settings":
            cm = am.ConfusionMatrix(K + rank)
            try:
                cm.sync()
                result["error"] = np.array("")
            except ValueError as e:
                result["error"] = np.array(str(e))
        result["matrix"] = cm.matrix.copy()
        np.savez(os.path.join(out_dir, f"rank{rank}.npz"), **result)
    finally:
        dist.destroy_process_group()


def run_two(tmp_path, mode: str) -> list[dict]:
    mp = pytest.importorskip("torch.multiprocessing")
    init_file = str(tmp_path / "init")
    mp.spawn(_worker, args=(2, init_file, str(tmp_path), mode), nprocs=2, join=True)
    out = []
    for r in range(2):
        with np.load(tmp_path / f"rank{r}.npz") as z:
            out.append({k: z[k] for k in z.files})
    return out


def test_sampler_really_pads():
    # The premise of the dedup tests: 5 samples over 2 ranks, index 0 counted twice.
    s0 = list(torch.utils.data.DistributedSampler(range(5), num_replicas=2, rank=0, shuffle=False))
    s1 = list(torch.utils.data.DistributedSampler(range(5), num_replicas=2, rank=1, shuffle=False))
    assert sorted(s0 + s1) == [0, 0, 1, 2, 3, 4]


def test_plain_sync_sums_every_counted_sample(tmp_path):
    results = run_two(tmp_path, "plain")
    counted = list(results[0]["indices"]) + list(results[1]["indices"])
    expected = reference_matrix(counted)  # sample 0 twice
    for r in results:
        np.testing.assert_array_equal(r["matrix"], expected)
    assert expected.sum() > reference_matrix(range(N_SAMPLES)).sum()


def test_sync_with_dataset_size_drops_the_padding(tmp_path):
    results = run_two(tmp_path, "dedup")
    expected = reference_matrix(range(N_SAMPLES))
    for r in results:
        np.testing.assert_array_equal(r["matrix"], expected)


def test_missing_sample_is_the_same_error_on_every_rank(tmp_path):
    results = run_two(tmp_path, "missing")
    for r in results:
        assert "1 of dataset_size=5 samples were never counted" in str(r["error"])
        assert "index 3" in str(r["error"])
        assert bool(r["unchanged"])


def test_ranks_with_different_settings_refuse_to_sum(tmp_path):
    results = run_two(tmp_path, "settings")
    for r in results:
        assert "ranks disagree" in str(r["error"])
        assert r["matrix"].sum() == 0


def test_sync_without_init_is_a_clear_error():
    if dist.is_initialized():
        pytest.skip("a process group is already initialised")
    cm = am.ConfusionMatrix(3)
    with pytest.raises(RuntimeError, match="init_process_group"):
        cm.sync()


def test_update_samples_is_all_or_nothing_and_checks_lengths():
    cm = am.ConfusionMatrix(K)
    cm.update_samples([0, 1], np.zeros((2, 3, 3), np.int64), np.zeros((2, 3, 3), np.uint8))
    assert cm.total == 18
    before = cm.matrix.copy()
    bad = np.zeros((2, 3, 3), np.uint8)
    bad[1, 0, 0] = 9
    with pytest.raises(ValueError, match=r"target has 1 label"):
        cm.update_samples([2, 3], np.zeros((2, 3, 3), np.int64), bad)
    with pytest.raises(ValueError, match="3 indices for 2 samples"):
        cm.update_samples([2, 3, 4], np.zeros((2, 3, 3), np.int64), np.zeros((2, 3, 3), np.uint8))
    with pytest.raises(ValueError, match=">= 0"):
        cm.update_samples(-1, np.zeros((3, 3), np.int64), np.zeros((3, 3), np.uint8))
    with pytest.raises(TypeError, match="ints"):
        cm.update_samples([0.5], np.zeros((1, 3, 3), np.int64), np.zeros((1, 3, 3), np.uint8))
    np.testing.assert_array_equal(cm.matrix, before)
    assert sorted(cm.__dict__["_sample_records"]) == [0, 1]
