"""The confusion-matrix kernel on network-like predictions (issue 19), side by side in one run.

    PYTHONPATH=python python bench/bench_network_like.py [--repeats 11] [--threads N] [--mib 300]

Methods are interleaved round by round (--repeats rounds), so a load that drifts during the run stays
out of the ratios; rates are medians, ratios the median of the per-round ratios; Mpix/s = (target,
prediction) pixel pairs per second, K = 150.  Every timed call starts in a stated cache state:
  warm  the method has just run on the same data (WARM_UPS untimed calls): its inputs and tables are in
        the caches;
  cold  64 MiB were written just before (untimed): nothing of the inputs is in the caches, as in an
        evaluation loop where the network runs between updates.
(Timing each method right after the others instead, as this script did first, gives each method the
caches its predecessor left: torchmetrics' int64 copies cost our kernel half its rate, numpy's less.)
Tables:
  1. per image, 1 thread, warm and cold: ConfusionMatrix.update against numpy bincount and torchmetrics
     MulticlassConfusionMatrix (torch pinned to 1 thread), uint8 and int64 inputs; the cold table adds a
     streaming read of the same arrays in the same state (the memory-bound floor);
  2. a batch beyond the caches (--mib of labels, both arrays) on 1 thread and all threads, against
     a streaming read of the same arrays with the same thread count (_core.stream_read: an OR of every
     64-bit word, AVX2 where present - the least work that reads every byte the kernel must read);
  3. per image, 1 thread, warm, by change density (synthetic ground truths, 683 wide, 2 to 40 changes a
     row), against the in-cache streaming read.
Data come from bench/network_like.py and are cached in /tmp/network_like_cache (deterministic seeds).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import network_like as nl  # noqa: E402

from ade20k_metrics.core import _core  # noqa: E402
from ade20k_metrics.core.confusion import ConfusionMatrix  # noqa: E402
from ade20k_metrics.core.threads import default_threads  # noqa: E402

K, IGNORE = nl.K, nl.IGNORE
CACHE = Path("/tmp/network_like_cache")
STAT = "median"


def cached(name, make):
    CACHE.mkdir(exist_ok=True)
    f = CACHE / f"{name}.npz"
    if f.exists():
        with np.load(f) as z:
            return [(z[f"t{i}"], z[f"p{i}"]) for i in range(len(z.files) // 2)]
    pairs = make()
    np.savez(f, **{f"{k}{i}": a for i, (t, p) in enumerate(pairs) for k, a in (("t", t), ("p", p))})
    return pairs


def ours(threads):
    def run(pairs):
        cm = ConfusionMatrix(K, ignore_index=IGNORE, n_threads=threads)
        for t, p in pairs:
            cm.update(p, t)
        return cm.matrix
    return run


def numpy_bincount(pairs):
    total = np.zeros(K * K, np.int64)
    for t, p in pairs:
        keep = t != IGNORE
        total += np.bincount(t[keep].astype(np.int64) * K + p[keep], minlength=K * K)
    return total.reshape(K, K)


def torchmetrics_confmat(pairs):
    import torch
    from torchmetrics.classification import MulticlassConfusionMatrix
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        metric = MulticlassConfusionMatrix(num_classes=K, ignore_index=IGNORE, validate_args=False)
        for t, p in pairs:
            metric.update(torch.from_numpy(p).long(), torch.from_numpy(t).long())
        return metric.compute().numpy()
    finally:
        torch.set_num_threads(old)


def stream(threads):
    def run(pairs):
        acc = 0
        for t, p in pairs:
            acc |= _core.stream_read(t, threads) | _core.stream_read(p, threads)
        return acc
    return run


_EVICT = None
# Untimed calls before each warm one: one is not always enough on this VM, whose core comes back slow
# after a pause (a 20 ms sleep costs the next calls 40-70%, a 20 ms busy loop nothing).
WARM_UPS = 3


def evict(_pairs=None):
    """Write 64 MiB: more than this machine's caches, so the next call's inputs come from memory."""
    global _EVICT
    if _EVICT is None:
        _EVICT = np.zeros(64 << 20, np.uint8)
    _EVICT += 1


def side_by_side(fns, pairs, repeats, state="warm"):
    """Time ``fns`` interleaved, one round of each after the other, ``repeats`` rounds (after a warm-up),
    each timed call in the cache state ``state`` ("warm": the same call just ran untimed; "cold": 64 MiB
    written just before): returns (median seconds of each, median over rounds of each one's time / the
    first one's time)."""
    for fn in fns:
        fn(pairs)
    times = [[] for _ in fns]
    for _ in range(repeats):
        for j, fn in enumerate(fns):
            if state == "cold":
                evict()
            else:
                for _ in range(WARM_UPS):
                    fn(pairs)
            s = time.perf_counter()
            fn(pairs)
            times[j].append(time.perf_counter() - s)
    if STAT == "min":  # the least disturbed round of each: for a machine loaded by others
        return [min(t) for t in times], [min(times[j]) / min(times[0]) for j in range(len(fns))]
    med = [statistics.median(t) for t in times]
    ratios = [statistics.median(tj / t0 for tj, t0 in zip(times[j], times[0])) for j in range(len(fns))]
    return med, ratios


def pixels(pairs):
    return sum(t.size for t, _ in pairs)


def table(title, header, rows):
    print(f"\n{title}\n")
    print("| " + " | ".join(header) + " |")
    print("| " + " | ".join("---" if i == 0 else "---:" for i in range(len(header))) + " |")
    for r in rows:
        print("| " + " | ".join(r) + " |")


def data_sets():
    real = cached("real", lambda: nl.real_set(3))
    sets = {"real annotations (3 maps)": real}
    for w, d in ((100, 10), (256, 10), (2048, 10)):
        sets[f"synthetic w={w} d={d}"] = cached(f"syn_{w}_{d}", lambda w=w, d=d: list(zip(*nl.synthetic_set(w, d, n=2))))
    by_density = {d: cached(f"syn_683_{d}", lambda d=d: list(zip(*nl.synthetic_set(683, d, n=2))))
                  for d in nl.DENSITIES}
    return sets, by_density


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=default_threads())
    ap.add_argument("--mib", type=int, default=300, help="label bytes (both arrays) of the beyond-cache batch")
    ap.add_argument("--skip", nargs="*", default=[], choices=["per-image", "batch", "density"])
    ap.add_argument("--stat", choices=["median", "min"], default="median",
                    help="median: medians of rounds and of per-round ratios; min: each method's fastest round "
                         "(for a machine that others load: the least disturbed round)")
    a = ap.parse_args(argv)
    global STAT
    STAT = a.stat
    print(f"load before: {os.getloadavg()[0]:.2f} (1 min), {os.cpu_count()} CPUs; simd {_core.simd()}; stat {a.stat}")
    sets, by_density = data_sets()
    for name, pairs in list(sets.items()) + [(f"synthetic w=683 d={d}", p) for d, p in by_density.items()]:
        acc = statistics.mean(nl.accuracy(x, y) for x, y in pairs)
        print(f"  {name:28s} accuracy {100 * acc:5.1f}%  changes/row gt "
              f"{statistics.mean(nl.changes_per_row(x) for x, _ in pairs):5.1f} pair "
              f"{statistics.mean(nl.pair_changes_per_row(x, y) for x, y in pairs):5.1f}")

    if "per-image" not in a.skip:
        for state in ("warm", "cold"):
            rows = []
            for name, pairs in sets.items():
                ref = numpy_bincount(pairs)
                assert np.array_equal(ours(1)(pairs), ref)
                n = pixels(pairs)
                fns = [ours(1), numpy_bincount, torchmetrics_confmat] + ([stream(1)] if state == "cold" else [])
                times, ratios = side_by_side(fns, pairs, a.repeats, state)
                p64 = [(t.astype(np.int64), p.astype(np.int64)) for t, p in pairs]
                assert np.array_equal(ours(1)(p64), ref)
                (t_o64, t_n64), (_, r_64) = side_by_side([ours(1), numpy_bincount], p64, a.repeats, state)
                row = [name, f"{n / times[0] / 1e6:,.0f}", f"{n / times[1] / 1e6:,.0f}",
                       f"{n / times[2] / 1e6:,.0f}", f"{ratios[1]:.1f}", f"{ratios[2]:.0f}"]
                if state == "cold":
                    row += [f"{n / times[3] / 1e6:,.0f}", f"{100 * ratios[3]:.0f}%"]
                rows.append(row + [f"{n / t_o64 / 1e6:,.0f}", f"{n / t_n64 / 1e6:,.0f}", f"{r_64:.1f}"])
            header = ["data", "ours uint8 Mpix/s", "numpy", "torchmetrics", "x numpy", "x torchmetrics"]
            if state == "cold":
                header += ["streaming read", "ours of streaming read"]
            table(f"Per image, 1 thread, {state} (load {os.getloadavg()[0]:.2f})",
                  header + ["ours int64", "numpy int64", "int64 x numpy"], rows)

    if "batch" not in a.skip:
        real = sets["real annotations (3 maps)"]
        h, w = min(t.shape[0] for t, _ in real), min(t.shape[1] for t, _ in real)
        tt = np.stack([t[:h, :w] for t, _ in real])
        pp = np.stack([p[:h, :w] for _, p in real])
        copies = max(1, (a.mib << 20) // (2 * tt.nbytes))
        big = [(np.ascontiguousarray(np.tile(tt, (copies, 1, 1))), np.ascontiguousarray(np.tile(pp, (copies, 1, 1))))]
        assert np.array_equal(ours(1)(big), numpy_bincount([(tt, pp)]) * copies)
        n = big[0][0].size
        rows = []
        for thr in sorted({1, a.threads}):
            (t_k, t_s), (_, r_s) = side_by_side([ours(thr), stream(thr)], big, a.repeats)
            rows.append([f"{thr}", f"{n / t_k / 1e9:.2f}", f"{n / t_s / 1e9:.2f}", f"{100 * r_s:.0f}%"])
        table(f"Beyond the caches: real annotations with network-like predictions, one batch of "
              f"{2 * big[0][0].nbytes >> 20} MiB ({copies * 3} maps {h}x{w}) (load {os.getloadavg()[0]:.2f})",
              ["threads", "ours Gpix/s", "streaming read Gpix/s", "of streaming read"], rows)

    if "density" not in a.skip:
        rows = []
        for d, pairs in by_density.items():
            n = pixels(pairs)
            (t_ours, t_np, t_s), (_, r_np, r_s) = side_by_side([ours(1), numpy_bincount, stream(1)], pairs, a.repeats)
            rows.append([f"{d}", f"{statistics.mean(nl.pair_changes_per_row(x, y) for x, y in pairs):.1f}",
                         f"{n / t_ours / 1e6:,.0f}", f"{n / t_np / 1e6:,.0f}", f"{r_np:.1f}",
                         f"{1e9 * t_ours / n:.2f}", f"{100 * r_s:.0f}%"])
        table(f"By change density, 683 x 512 synthetic maps, per image, 1 thread (load {os.getloadavg()[0]:.2f})",
              ["gt changes/row (aim)", "pair changes/row", "ours Mpix/s", "numpy", "x numpy", "ns/pixel",
               "of in-cache streaming read"], rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
