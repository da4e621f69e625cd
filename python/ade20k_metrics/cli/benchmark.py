"""Throughput of the confusion-matrix kernel beside its peers, on the same data in one process.

Run as ``ade20k-metrics bench`` or ``python bench/run.py``.  Every method
histograms the same (target, pred) label maps into a 150 x 150 matrix; a
streaming read of the same arrays gives the memory limit.  Peers that are not
installed are skipped with a note.  Figures are medians of repeated runs, in
Mpix/s (pixel pairs per second), with ratios measured side by side.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..core import _core
from ..core.confusion import ConfusionMatrix
from ..core.kernel import openmp_enabled, simd
from ..core.threads import default_threads
from ..datasets import ade20k
from ..io.report import cpu_model

K = 150
IGNORE = 255


# -- data ---------------------------------------------------------------------------------------------
def ade20k_like(n: int, h: int = 512, w: int = 683, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(targets, preds) shaped (n, h, w) uint8, like ADE20K label maps and a decent model's output.

    Each map is a Voronoi partition into 12-40 regions whose classes follow
    ADE20K's pixel frequencies (a few stuff classes cover most pixels, a long
    tail of things); ~5% of pixels are 255 (ignored).  The prediction moves
    region borders by a few pixels and gets ~15% of regions wrong.
    """
    rng = np.random.default_rng(seed)
    freq = ade20k.classes().pixel_ratio
    freq = freq / freq.sum()
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    targets = np.empty((n, h, w), np.uint8)
    preds = np.empty((n, h, w), np.uint8)
    for i in range(n):
        m = int(rng.integers(12, 41))
        sy, sx = rng.uniform(0, h, m).astype(np.float32), rng.uniform(0, w, m).astype(np.float32)
        labels = rng.choice(K, size=m, p=freq).astype(np.uint8)
        labels[rng.random(m) < 0.05] = IGNORE
        targets[i] = labels[_nearest(yy, xx, sy, sx)]
        jy = sy + rng.normal(0, 4, m).astype(np.float32)
        jx = sx + rng.normal(0, 4, m).astype(np.float32)
        wrong = rng.random(m) < 0.15
        pred_labels = np.where(wrong, rng.integers(0, K, m), labels).astype(np.uint8)
        pred_labels[pred_labels == IGNORE] = 0
        preds[i] = pred_labels[_nearest(yy, xx, jy, jx)]
    return targets, preds


def _nearest(yy, xx, sy, sx) -> np.ndarray:
    best = np.full(yy.shape, np.inf, np.float32)
    arg = np.zeros(yy.shape, np.intp)
    for j in range(len(sy)):
        d = (yy - sy[j]) ** 2 + (xx - sx[j]) ** 2
        closer = d < best
        best[closer] = d[closer]
        arg[closer] = j
    return arg


def from_annotations(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Maps built from the three real ADE20K annotations (cropped to their common size)."""
    maps = list(ade20k.sample_annotations().values())
    h, w = min(m.shape[0] for m in maps), min(m.shape[1] for m in maps)
    targets, preds = [], []
    for i in range(n):
        gt = maps[i % len(maps)][:h, :w]
        pred = ade20k.simulate_prediction(gt, seed=i)[:h, :w] - 1  # 1..150 -> 0..149
        t = gt.astype(np.int16) - 1
        t[gt == 0] = IGNORE
        targets.append(t.astype(np.uint8))
        preds.append(pred)
    return np.stack(targets), np.stack(preds)


def uniform(n: int, h: int = 512, w: int = 683, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (rng.integers(0, K, (n, h, w), dtype=np.uint8), rng.integers(0, K, (n, h, w), dtype=np.uint8))


def _box_blur(a: np.ndarray, r: int, axis: int) -> np.ndarray:
    # Mean over a window of 2r+1 along `axis` (edges clamped), by a cumulative sum.
    if r <= 0:
        return a
    n = a.shape[axis]
    pad = [(0, 0)] * a.ndim
    pad[axis] = (r + 1, r)
    c = np.cumsum(np.pad(a, pad, mode="edge"), axis=axis, dtype=np.float32)
    hi = np.take(c, np.arange(2 * r + 1, 2 * r + 1 + n), axis=axis)
    lo = np.take(c, np.arange(0, n), axis=axis)
    return (hi - lo) / np.float32(2 * r + 1)


def _smooth_field(rng, shape: tuple[int, ...], scale: float) -> np.ndarray:
    # Gaussian noise on a coarse grid (one node every `scale` pixels), bilinearly upsampled.
    h, w = shape[-2:]
    gh, gw = max(2, int(np.ceil(h / scale)) + 1), max(2, int(np.ceil(w / scale)) + 1)
    g = rng.standard_normal(shape[:-2] + (gh, gw)).astype(np.float32)
    y = np.linspace(0, gh - 1, h, dtype=np.float32)
    x = np.linspace(0, gw - 1, w, dtype=np.float32)
    y0, x0 = np.minimum(y.astype(int), gh - 2), np.minimum(x.astype(int), gw - 2)
    fy, fx = (y - y0)[:, None], (x - x0)[None, :]
    a, b = g[..., y0, :][..., x0], g[..., y0, :][..., x0 + 1]
    c, d = g[..., y0 + 1, :][..., x0], g[..., y0 + 1, :][..., x0 + 1]
    return (a * (1 - fx) + b * fx) * (1 - fy) + (c * (1 - fx) + d * fx) * fy


def network_prediction(target: np.ndarray, seed: int = 0, blur: int = 3, noise: float = 0.6,
                       noise_scale: float = 32.0, extra_classes: int = 3) -> np.ndarray:
    """A network-like prediction (uint8, 0..K-1) for a target map (0..K-1, 255 ignored).

    Each present class's indicator is blurred (two box passes ~ a Gaussian of
    sigma ~ blur), a smooth noise field is added per class (plus a few absent
    classes that only get noise, so confusions appear), and the argmax is the
    prediction: boundaries wander and small regions are lost, as a network's do.
    """
    rng = np.random.default_rng(seed)
    present = np.unique(target[target != IGNORE])
    absent = np.setdiff1d(np.arange(K), present)
    extra = rng.choice(absent, size=min(extra_classes, absent.size), replace=False) if absent.size else absent
    classes = np.concatenate([present, extra]).astype(np.int64)
    if classes.size == 0:
        return np.zeros(target.shape, np.uint8)
    score = (target[None] == classes[:, None, None]).astype(np.float32)
    for _ in range(2):
        score = _box_blur(_box_blur(score, blur, 1), blur, 2)
    score += noise * _smooth_field(rng, score.shape, noise_scale)
    return classes[np.argmax(score, axis=0)].astype(np.uint8)


def synthetic_target(h: int, w: int, density: float, seed: int = 0, n_classes: int = 24) -> np.ndarray:
    """A target map of smooth regions (argmax of smooth class fields) with about
    `density` label changes per row; ~5% of the regions ignored (255)."""
    rng = np.random.default_rng(seed)
    freq = ade20k.classes().pixel_ratio
    labels = rng.choice(K, size=n_classes, replace=False, p=freq / freq.sum())
    # region size ~ w / density; the argmax of n fields changes ~1.3x as often as one field's scale
    field = _smooth_field(rng, (n_classes, h, w), max(2.0, 1.6 * w / max(density, 0.5)))
    t = labels[np.argmax(field, axis=0)].astype(np.uint8)
    t[np.isin(t, labels[: max(1, n_classes // 20)])] = IGNORE
    return t


def changes_per_row(maps: np.ndarray) -> float:
    """Mean label changes along a row of (n, h, w) maps."""
    return float((maps[..., 1:] != maps[..., :-1]).sum(axis=-1).mean())


def pixel_accuracy(targets: np.ndarray, preds: np.ndarray) -> float:
    keep = targets != IGNORE
    return float((targets[keep] == preds[keep]).mean())


def network_real(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The three real ADE20K annotations (cropped to a common size) against network-like predictions."""
    maps = list(ade20k.sample_annotations().values())
    h, w = min(m.shape[0] for m in maps), min(m.shape[1] for m in maps)
    targets, preds = [], []
    for i in range(n):
        gt = maps[i % len(maps)][:h, :w]
        t = gt.astype(np.int16) - 1
        t[gt == 0] = IGNORE
        t = t.astype(np.uint8)
        targets.append(t)
        preds.append(network_prediction(t, seed=i))
    return np.stack(targets), np.stack(preds)


def network_synthetic(n: int, h: int = 512, w: int = 683, density: float = 16.0,
                      accuracy: float = 0.8) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic targets with ~`density` changes a row against network-like predictions."""
    targets = np.stack([synthetic_target(h, w, density, seed=i) for i in range(n)])
    # noise as smooth as a third of a region (at most 32 px), blur up to 3 px; its
    # amplitude set by bisection on the first map for ~`accuracy` pixel accuracy
    region = 1.6 * w / max(density, 0.5)
    kw = dict(noise_scale=min(32.0, max(4.0, region / 3)), blur=max(1, min(3, int(region / 12))))
    lo, hi = 0.05, 3.0
    for _ in range(7):
        mid = (lo + hi) / 2
        acc = pixel_accuracy(targets[:1], network_prediction(targets[0], seed=1000, noise=mid, **kw)[None])
        lo, hi = (mid, hi) if acc > accuracy else (lo, mid)
    kw["noise"] = (lo + hi) / 2
    preds = np.stack([network_prediction(t, seed=1000 + i, **kw) for i, t in enumerate(targets)])
    return targets, preds


DATASETS = {"ade20k-like": ade20k_like, "real-annotations": from_annotations, "uniform": uniform,
            "network-real": network_real, "network-synthetic": network_synthetic}


# -- methods ------------------------------------------------------------------------------------------
# Each takes (targets, preds) (n, h, w) and returns a (K, K) matrix or the peer's own statistics.
Method = Callable[[np.ndarray, np.ndarray], object]


def ours_per_image(threads: int) -> Method:
    def run(targets, preds):
        cm = ConfusionMatrix(K, ignore_index=IGNORE, n_threads=threads)
        for t, p in zip(targets, preds):
            cm.update(p, t)
        return cm.matrix
    return run


def ours_batch(threads: int) -> Method:
    def run(targets, preds):
        return ConfusionMatrix(K, ignore_index=IGNORE, n_threads=threads).update(preds, targets).matrix
    return run


def numpy_bincount(targets, preds):
    total = np.zeros(K * K, np.int64)
    for t, p in zip(targets, preds):
        keep = t != IGNORE
        total += np.bincount(t[keep].astype(np.int64) * K + p[keep], minlength=K * K)
    return total.reshape(K, K)


def hf_histogram(targets, preds):
    # HF evaluate's mean_iou per image: three np.histogram calls on masked arrays.
    out = np.zeros((3, K))
    for t, p in zip(targets, preds):
        keep = t != IGNORE
        tl, pl = t[keep], p[keep]
        inter = pl[pl == tl]
        out[0] += np.histogram(inter, bins=K, range=(0, K - 1))[0]
        out[1] += np.histogram(pl, bins=K, range=(0, K - 1))[0]
        out[2] += np.histogram(tl, bins=K, range=(0, K - 1))[0]
    return out


def _torch():
    import torch

    return torch


def torch_bincount(targets, preds):
    torch = _torch()
    total = torch.zeros(K * K, dtype=torch.int64)
    for t, p in zip(targets, preds):
        tt, pt = torch.from_numpy(t), torch.from_numpy(p)
        keep = tt != IGNORE
        total += torch.bincount(tt[keep].long() * K + pt[keep].long(), minlength=K * K)
    return total.reshape(K, K).numpy()


def torch_bincount_cuda() -> Method:
    """torch.bincount on the GPU with the maps already there (transfers not timed)."""
    cache: dict[int, tuple] = {}

    def run(targets, preds):
        torch = _torch()
        key = id(targets)
        if key not in cache:
            cache.clear()
            cache[key] = (torch.from_numpy(np.ascontiguousarray(targets)).cuda(),
                          torch.from_numpy(np.ascontiguousarray(preds)).cuda())
        tg, pg = cache[key]
        total = torch.zeros(K * K, dtype=torch.int64, device="cuda")
        for t, p in zip(tg, pg):
            keep = t != IGNORE
            total += torch.bincount(t[keep].long() * K + p[keep].long(), minlength=K * K)
        torch.cuda.synchronize()
        return total.reshape(K, K).cpu().numpy()
    return run


def _cuda_available() -> bool:
    if not _peer_available("torch"):
        return False
    return bool(_torch().cuda.is_available())


def torch_histc_mmseg(targets, preds):
    # mmseg's intersect_and_union: torch.histc on float copies of masked labels.
    torch = _torch()
    out = torch.zeros(3, K, dtype=torch.float64)
    for t, p in zip(targets, preds):
        tt, pt = torch.from_numpy(t), torch.from_numpy(p)
        keep = tt != IGNORE
        tl, pl = tt[keep], pt[keep]
        inter = pl[pl == tl]
        out[0] += torch.histc(inter.float(), bins=K, min=0, max=K - 1)
        out[1] += torch.histc(pl.float(), bins=K, min=0, max=K - 1)
        out[2] += torch.histc(tl.float(), bins=K, min=0, max=K - 1)
    return out.numpy()


def torchmetrics_confmat(targets, preds):
    torch = _torch()
    from torchmetrics.classification import MulticlassConfusionMatrix

    metric = MulticlassConfusionMatrix(num_classes=K, ignore_index=IGNORE, validate_args=False)
    for t, p in zip(targets, preds):
        metric.update(torch.from_numpy(p).long(), torch.from_numpy(t).long())
    return metric.compute().numpy()


def sklearn_confmat(targets, preds):
    from sklearn.metrics import confusion_matrix

    total = np.zeros((K, K), np.int64)
    for t, p in zip(targets, preds):
        keep = t != IGNORE
        total += confusion_matrix(t[keep], p[keep], labels=np.arange(K))
    return total


def fast_histogram(targets, preds):
    from fast_histogram import histogram2d

    total = np.zeros((K, K))
    for t, p in zip(targets, preds):
        keep = t != IGNORE
        total += histogram2d(t[keep], p[keep], bins=K, range=[[0, K], [0, K]])
    return total


def boost_histogram(threads: int) -> Method:
    def run(targets, preds):
        import boost_histogram as bh

        hist = bh.Histogram(bh.axis.Integer(0, K, underflow=False, overflow=False),
                            bh.axis.Integer(0, K, underflow=False, overflow=False), storage=bh.storage.Int64())
        for t, p in zip(targets, preds):
            keep = t != IGNORE
            hist.fill(t[keep], p[keep], threads=threads if threads > 1 else None)
        return hist.view()
    return run


def stream_read(threads: int) -> Method:
    def run(targets, preds):
        return _core.stream_read(targets, threads) | _core.stream_read(preds, threads)
    return run


@dataclass
class Row:
    data: str
    dtype: str
    mode: str
    threads: int
    method: str
    mpix_s: float
    note: str = ""
    scope: str = ""  # "beyond cache": the large batch, compared with its own memory-limit row
    spread: float = float("nan")  # (slowest - fastest) / median of the timed repeats


# The repeats of the last _time call, for the spread of each row.
_LAST_TIMES: list[float] = []
# Repeats whose slowest is this much above the fastest (relative to the median) mean a busy machine.
BUSY_SPREAD = 0.25


def spread_of(times: list[float]) -> float:
    if len(times) < 2:
        return 0.0
    return (max(times) - min(times)) / statistics.median(times)


def machine_load() -> tuple[float, int] | None:
    """(1-minute load average, CPUs available) where the OS tells, else None."""
    from ..core.threads import available_cpus

    try:
        return os.getloadavg()[0], available_cpus()
    except (AttributeError, OSError):
        return None


def busy_warnings(rows: list[Row], load_before: tuple[float, int] | None) -> list[str]:
    """Why the figures may not be trusted: a loaded machine, or repeats that disagree."""
    out = []
    if load_before is not None and load_before[0] > 0.5 * load_before[1]:
        out.append(f"the machine was busy: load average {load_before[0]:.1f} on {load_before[1]} CPU(s) before "
                   "the run; other work shares the cores and the figures are lower and noisier than they would be")
    noisy = [r for r in rows if np.isfinite(r.spread) and r.spread > BUSY_SPREAD]
    if noisy:
        worst = max(noisy, key=lambda r: r.spread)
        out.append(f"{len(noisy)} of {len(rows)} measurements varied by more than {100 * BUSY_SPREAD:.0f}% over their "
                   f"repeats (worst: {worst.method}, {worst.threads} thr, {100 * worst.spread:.0f}%): the machine "
                   "is likely busy; rerun on an idle machine or with more --repeats")
    return out


def last_level_cache_bytes() -> int | None:
    """Size of the largest CPU cache (Linux sysfs), or None where it cannot be read."""
    sizes = []
    base = "/sys/devices/system/cpu/cpu0/cache"
    try:
        entries = os.listdir(base)
    except OSError:
        return None
    for entry in entries:
        try:
            with open(os.path.join(base, entry, "size")) as f:
                text = f.read().strip()
        except OSError:
            continue
        units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
        if text[-1:] in units and text[:-1].isdigit():
            sizes.append(int(text[:-1]) * units[text[-1]])
        elif text.isdigit():
            sizes.append(int(text))
    return max(sizes) if sizes else None


def beyond_cache_bytes() -> int:
    """Label bytes (both arrays) for the large batch: 4x the last-level cache, at least 256 MiB, so that
    the streaming read and the kernel are bound by memory, not by the cache."""
    return max(4 * (last_level_cache_bytes() or 0), 256 << 20)


def _repeat_to(arr: np.ndarray, nbytes: int) -> np.ndarray:
    """``arr`` (maps along axis 0) repeated to about ``nbytes``."""
    per_map = arr[0].nbytes
    return np.resize(arr, (max(1, nbytes // per_map),) + arr.shape[1:])


def _time(fn: Method, targets, preds, repeats: int) -> float:
    fn(targets, preds)  # warm-up (imports, allocations, page faults)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(targets, preds)
        times.append(time.perf_counter() - start)
    _LAST_TIMES[:] = times
    return statistics.median(times)


def _peer_available(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def run_suite(images: int, repeats: int, threads_all: int, datasets: list[str], dtypes: list[str],
              slow_images: int, log=print, large_bytes: int = 0) -> list[Row]:
    rows: list[Row] = []
    peers_single = [
        ("numpy bincount", None, numpy_bincount),
        ("HF evaluate np.histogram", None, hf_histogram),
        # torch-based peers pinned to one thread too (torch defaults to every core)
        ("torch.bincount (CPU)", "torch", _with_torch_threads(torch_bincount, 1)),
        ("mmseg torch.histc", "torch", _with_torch_threads(torch_histc_mmseg, 1)),
        ("torchmetrics MulticlassConfusionMatrix", "torchmetrics", _with_torch_threads(torchmetrics_confmat, 1)),
        ("sklearn confusion_matrix", "sklearn", sklearn_confmat),
        ("fast-histogram", "fast_histogram", fast_histogram),
        ("boost-histogram", "boost_histogram", boost_histogram(1)),
    ]
    for name in datasets:
        targets8, preds8 = DATASETS[name](images)
        for dtype in dtypes:
            targets = targets8.astype(dtype)
            preds = preds8.astype(dtype)
            reference = numpy_bincount(targets, preds)
            for threads in sorted({1, threads_all}):
                methods = [
                    ("ade20k-metrics per image", ours_per_image(threads), None, ""),
                    ("ade20k-metrics one batch", ours_batch(threads), None, ""),
                    ("memory limit (streaming read)", stream_read(threads), None, ""),
                ]
                if threads == 1:
                    methods += [(label, fn, mod, "") for label, mod, fn in peers_single]
                elif _peer_available("boost_histogram"):
                    methods.append(("boost-histogram", boost_histogram(threads), "boost_histogram", ""))
                if threads == threads_all and _cuda_available():
                    methods.append(("torch.bincount (GPU, data on GPU)", torch_bincount_cuda(), "torch", ""))
                if threads > 1 and _peer_available("torch"):
                    methods.append(("torch.bincount (CPU)", _with_torch_threads(torch_bincount, threads), "torch", ""))
                for label, fn, module, note in methods:
                    if module is not None and not _peer_available(module):
                        rows.append(Row(name, dtype, "", threads, label, float("nan"), f"skipped: {module} not installed"))
                        continue
                    subset = slice(None)
                    slow = label.startswith(("sklearn", "torchmetrics", "mmseg", "HF", "fast-"))
                    if slow:
                        subset = slice(0, min(images, slow_images))
                    t_sub, p_sub = targets[subset], preds[subset]
                    if label.startswith("ade20k-metrics"):
                        got = fn(t_sub, p_sub)
                        if not np.array_equal(got, reference):
                            raise AssertionError(f"{label} disagrees with numpy on {name}/{dtype}")
                    seconds = _time(fn, t_sub, p_sub, repeats)
                    mpix = t_sub.size / seconds / 1e6
                    mode = "batch" if "batch" in label or "memory" in label else "per image"
                    spread = spread_of(_LAST_TIMES)
                    rows.append(Row(name, dtype, mode, threads, label, mpix, note, spread=spread))
                    log(f"  {name:17s} {dtype:6s} {threads:2d} thr  {label:40s} {mpix:10.1f} Mpix/s"
                        f"  (spread {100 * spread:.0f}%)")
            if large_bytes:
                rows += _beyond_cache(name, dtype, targets, preds, reference, large_bytes, threads_all, repeats, log)
    return rows


def _beyond_cache(name, dtype, targets, preds, reference, nbytes, threads, repeats, log) -> list[Row]:
    # One batch larger than the caches, all threads: the kernel against a
    # streaming read of the same arrays, both bound by memory bandwidth.
    big_t, big_p = _repeat_to(targets, nbytes // 2), _repeat_to(preds, nbytes // 2)
    copies = big_t.shape[0] // targets.shape[0]
    expected = reference * copies + numpy_bincount(big_t[copies * targets.shape[0]:], big_p[copies * targets.shape[0]:])
    rows = []
    mib = (big_t.nbytes + big_p.nbytes) >> 20
    for label, fn in ((f"ade20k-metrics one batch of {mib:,} MiB", ours_batch(threads)),
                      (f"memory limit, {mib:,} MiB", stream_read(threads))):
        if label.startswith("ade20k-metrics") and not np.array_equal(fn(big_t, big_p), expected):
            raise AssertionError(f"{label} disagrees with numpy on {name}/{dtype}")
        mpix = big_t.size / _time(fn, big_t, big_p, repeats) / 1e6
        rows.append(Row(name, dtype, "batch", threads, label, mpix, scope="beyond cache"))
        log(f"  {name:17s} {dtype:6s} {threads:2d} thr  {label:40s} {mpix:10.1f} Mpix/s")
    return rows


def _with_torch_threads(fn: Method, threads: int) -> Method:
    def run(targets, preds):
        torch = _torch()
        old = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            return fn(targets, preds)
        finally:
            torch.set_num_threads(old)
    return run


def threshold_sweep(threads: int, repeats: int, log=print) -> list[tuple[int, int, float]]:
    """Per-image throughput at several parallel thresholds (pixels per thread).

    Measures where going parallel starts to pay: rows (pixels per image,
    min_pixels_per_thread, Mpix/s) on coherent uint8 maps of several sizes.
    """
    from ..core.kernel import kernel_options

    results = []
    for h, w in [(64, 64), (128, 171), (256, 342), (512, 683), (1024, 1366)]:
        targets, preds = ade20k_like(8, h, w, seed=1)
        for per_thread in [1 << 12, 1 << 14, 1 << 15, 1 << 16, 1 << 17, 1 << 18, 1 << 40]:
            with kernel_options(min_pixels_per_thread=per_thread):
                seconds = _time(ours_per_image(threads), targets, preds, repeats)
            mpix = targets.size / seconds / 1e6
            results.append((h * w, per_thread, mpix))
            log(f"  {h}x{w:<5d} min_pixels_per_thread={per_thread:>14d}  {mpix:9.1f} Mpix/s")
    return results


def format_table(rows: list[Row]) -> str:
    lines = ["| data | dtype | threads | method | Mpix/s | spread | x numpy | of memory limit |",
             "| --- | --- | ---: | --- | ---: | ---: | ---: | ---: |"]
    groups: dict[tuple, list[Row]] = {}
    for r in rows:
        groups.setdefault((r.data, r.dtype), []).append(r)
    for (data, dtype), group in groups.items():
        numpy_rate = next((r.mpix_s for r in group if r.method == "numpy bincount"), float("nan"))
        for r in group:
            limit = next((x.mpix_s for x in group if x.threads == r.threads and x.scope == r.scope
                          and x.method.startswith("memory")), float("nan"))
            if np.isnan(r.mpix_s):
                lines.append(f"| {data} | {dtype} | {r.threads} | {r.method} | - | - | - | - | {r.note}")
                continue
            spread = "-" if not np.isfinite(r.spread) else f"{100 * r.spread:.0f}%"
            lines.append(f"| {data} | {dtype} | {r.threads} | {r.method} | {r.mpix_s:,.0f} | {spread} | "
                         f"{r.mpix_s / numpy_rate:,.1f} | {100 * r.mpix_s / limit:.0f}% |")
    return "\n".join(lines)


def header(threads_all: int) -> str:
    return (f"CPU: {cpu_model()} ({os.cpu_count()} logical CPUs, {threads_all} threads used for 'all'); "
            f"Python {platform.python_version()}, NumPy {np.__version__}; kernel: OpenMP "
            f"{'on' if openmp_enabled() else 'off'}, SIMD {simd()}")


def plot(rows: list[Row], path: str) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    chosen = [r for r in rows if r.data == rows[0].data and r.dtype == rows[0].dtype and not np.isnan(r.mpix_s)]
    chosen.sort(key=lambda r: r.mpix_s)
    fig, ax = plt.subplots(figsize=(9, 0.35 * len(chosen) + 1.5))
    colours = ["tab:red" if r.method.startswith("ade20k") else "tab:gray" if r.method.startswith("memory")
               else "tab:blue" for r in chosen]
    ax.barh([f"{r.method} ({r.threads} thr)" for r in chosen], [r.mpix_s for r in chosen], color=colours)
    ax.set_xscale("log")
    ax.set_xlabel("Mpix/s (log scale, higher is better)")
    ax.set_title(f"Confusion matrix, {rows[0].data} {rows[0].dtype} maps, K=150\n{cpu_model()}", fontsize=9)
    fig.tight_layout()
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ade20k-metrics bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=32, help="512x683 maps per data set (default 32)")
    parser.add_argument("--slow-images", type=int, default=4, help="maps for the slowest peers (default 4)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per method; the median is kept")
    parser.add_argument("--threads", type=int, default=None, help="threads for the 'all threads' rows")
    parser.add_argument("--data", nargs="+", choices=sorted(DATASETS), default=["ade20k-like", "uniform"])
    parser.add_argument("--dtypes", nargs="+", choices=["uint8", "int64"], default=["uint8", "int64"])
    parser.add_argument("--beyond-cache", type=int, default=None, metavar="MIB",
                        help="also time one batch of about this many MiB of labels with all threads against a "
                             "streaming read of it (default: 4x the last-level cache, at least 256; 0: skip)")
    parser.add_argument("--quick", action="store_true", help="a fast look: 4 maps, 3 repeats, ADE20K-like uint8")
    parser.add_argument("--sweep-threshold", action="store_true",
                        help="instead: per-image throughput at several parallel thresholds (tuning)")
    parser.add_argument("--results", default=None, help="write a Markdown report here (e.g. bench/RESULTS.md)")
    parser.add_argument("--plot", default=None, help="write a PNG bar chart here (needs matplotlib)")
    args = parser.parse_args(argv)
    if args.quick:
        args.images, args.repeats, args.slow_images = 4, 3, 2
        args.data, args.dtypes = ["ade20k-like"], ["uint8"]
        if args.beyond_cache is None:
            args.beyond_cache = 0
    if args.images < 1 or args.repeats < 1 or args.slow_images < 1:
        parser.error("--images, --slow-images and --repeats must be >= 1")
    threads_all = args.threads or default_threads()
    print(header(threads_all))
    if args.sweep_threshold:
        threshold_sweep(threads_all, args.repeats)
        return 0
    if args.beyond_cache is not None and args.beyond_cache < 0:
        parser.error("--beyond-cache must be >= 0")
    large = beyond_cache_bytes() if args.beyond_cache is None else args.beyond_cache << 20
    load_before = machine_load()
    rows = run_suite(args.images, args.repeats, threads_all, args.data, args.dtypes, args.slow_images,
                     large_bytes=large)
    table = format_table(rows)
    print()
    print(table)
    print(f"\nspread: (slowest - fastest) / median of each measurement's {args.repeats} timed repeats")
    warnings_ = busy_warnings(rows, load_before)
    for line in warnings_:
        print(f"warning: {line}", file=sys.stderr)
    if args.results:
        text = (f"# Benchmark results\n\n{header(threads_all)}\n\n"
                f"Command: `ade20k-metrics bench {' '.join(argv if argv is not None else sys.argv[1:])}`\n\n"
                f"{args.images} maps of 512x683 per data set ({args.slow_images} for the slowest peers), "
                f"median of {args.repeats} runs.\n\n{table}\n"
                + "".join(f"\nWarning: {line}\n" for line in warnings_))
        tmp = args.results + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, args.results)
    if args.plot:
        if not plot(rows, args.plot):
            print("note: matplotlib is not installed; no plot written", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
