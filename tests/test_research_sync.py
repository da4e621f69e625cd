"""ImageStats.sync over torch.distributed: two processes, gloo backend, CPU; every scenario in one spawn."""
from __future__ import annotations

import datetime
import os

import numpy as np
import pytest

import ade20k_metrics as am
from ade20k_metrics.analysis.stats import ImageStats

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")
if not dist.is_available():
    pytest.skip("torch.distributed is not available", allow_module_level=True)

K = 4
N_SAMPLES = 5  # odd: DistributedSampler over 2 ranks repeats one sample
SHAPES = [(3, 4), (5, 2), (2, 2), (4, 6), (1, 3)]


def sample(index: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic (pred, target) of dataset item `index`; sizes differ, some pixels ignored."""
    rng = np.random.default_rng(200 + index)
    target = rng.integers(0, K + 1, SHAPES[index]).astype(np.uint8)
    target[target == K] = 255
    return rng.integers(0, K, SHAPES[index]), target


def _error_of(fn) -> str:
    try:
        fn()
    except (ValueError, RuntimeError) as e:
        return f"{type(e).__name__}: {e}"
    return ""


def _worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=60))
    try:
        indices = list(torch.utils.data.DistributedSampler(range(N_SAMPLES), num_replicas=world, rank=rank,
                                                           shuffle=False))
        out = {"indices": np.array(indices)}

        plain = ImageStats(K)
        for i in indices:
            plain.update(*sample(i), name=f"s{i}")
        plain.sync()
        out["plain_names"] = np.array(plain.names)
        out["plain_matrix"] = plain.matrix.copy()
        out["plain_again"] = np.array(_error_of(plain.sync))

        dedup = ImageStats(K)
        dedup.update(*sample(indices[0]), name=f"s{indices[0]}", index=indices[0])
        rest = indices[1:]
        for i in rest:
            dedup.update(*sample(i), name=f"s{i}", index=i)
        dedup.sync(dataset_size=N_SAMPLES)
        out["dedup_names"] = np.array(dedup.names)
        out["dedup_indices"] = np.array(dedup.indices)
        out["dedup_matrix"] = dedup.matrix.copy()
        out["dedup_image_miou"] = dedup.image_miou()
        out["dedup_ci"] = np.array([dedup.bootstrap_miou(200, seed=1).low, dedup.bootstrap_miou(200, seed=1).high])
        out["dedup_cells_freed"] = np.array(dedup._cells == {})

        missing = ImageStats(K)
        for i in indices:
            if i != 3:  # index 3 is never counted
                missing.update(*sample(i), index=i)
        before = missing.state_dict()
        out["missing_error"] = np.array(_error_of(lambda: missing.sync(dataset_size=N_SAMPLES)))
        out["missing_unchanged"] = np.array(ImageStats.from_state_dict(before) == missing)

        unindexed = ImageStats(K)
        for i in indices:
            unindexed.update(*sample(i), index=None if (rank == 1 and i == indices[-1]) else i)
        out["unindexed_error"] = np.array(_error_of(lambda: unindexed.sync(dataset_size=N_SAMPLES)))
        out["unindexed_len"] = np.array(len(unindexed))

        settings = ImageStats(K + rank)
        out["settings_error"] = np.array(_error_of(settings.sync))
        np.savez(os.path.join(out_dir, f"rank{rank}.npz"), **out)
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    mp = pytest.importorskip("torch.multiprocessing")
    tmp = tmp_path_factory.mktemp("sync")
    mp.spawn(_worker, args=(2, str(tmp / "init"), str(tmp)), nprocs=2, join=True)
    out = []
    for r in range(2):
        with np.load(tmp / f"rank{r}.npz") as z:
            out.append({k: z[k] for k in z.files})
    return out


def reference_matrix(indices) -> np.ndarray:
    return sum(am.reference.confusion_matrix(*sample(i), K) for i in indices)


def test_plain_sync_gathers_every_image_in_rank_order(results):
    counted = list(results[0]["indices"]) + list(results[1]["indices"])
    assert counted.count(0) == 2  # the sampler repeated sample 0
    for r in results:
        assert list(r["plain_names"]) == [f"s{i}" for i in counted]
        np.testing.assert_array_equal(r["plain_matrix"], reference_matrix(counted))
        assert "synced already" in str(r["plain_again"])


def test_sync_with_dataset_size_keeps_each_sample_once_in_index_order(results):
    expected = reference_matrix(range(N_SAMPLES))
    own = [am.compute_metrics(am.reference.confusion_matrix(*sample(i), K), warn_shift=False).miou
           for i in range(N_SAMPLES)]
    for r in results:
        assert list(r["dedup_names"]) == [f"s{i}" for i in range(N_SAMPLES)]
        assert list(r["dedup_indices"]) == list(range(N_SAMPLES))
        np.testing.assert_array_equal(r["dedup_matrix"], expected)
        np.testing.assert_allclose(r["dedup_image_miou"], own, rtol=1e-12)
        assert bool(r["dedup_cells_freed"])
    np.testing.assert_array_equal(results[0]["dedup_ci"], results[1]["dedup_ci"])


def test_missing_sample_is_the_same_error_on_every_rank(results):
    for r in results:
        assert "1 of dataset_size=5 samples were never counted" in str(r["missing_error"])
        assert "index 3" in str(r["missing_error"])
        assert bool(r["missing_unchanged"])


def test_image_without_index_is_the_same_error_on_every_rank(results):
    for r in results:
        assert "rank 1 holds image 2 without a dataset index" in str(r["unindexed_error"])
    assert [int(r["unindexed_len"]) for r in results] == [3, 3]


def test_ranks_with_different_settings_refuse_to_sync(results):
    for r in results:
        assert "ranks disagree" in str(r["settings_error"])


def test_sync_without_init_is_a_clear_error():
    if dist.is_initialized():
        pytest.skip("a process group is already initialised")
    with pytest.raises(RuntimeError, match="init_process_group"):
        ImageStats(3).sync()
