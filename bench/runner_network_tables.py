"""The kernel on network-like predictions (issue 19): python bench/runner_network_tables.py [--help].

Targets: the three real ADE20K annotations, and synthetic maps of smooth
regions 100 to 2048 pixels wide with 2 to 40 label changes per row.
Predictions: each class's indicator blurred, a smooth noise field added, argmax
(ade20k_metrics.cli.benchmark.network_prediction), ~80% pixel accuracy, checked
and printed per data set.  All figures are medians of repeats in one process,
side by side with numpy bincount, torchmetrics (one thread) and a streaming
read of the same arrays.  The same generators are `--data network-real
network-synthetic` of `ade20k-metrics bench`.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from ade20k_metrics.cli import benchmark as b


def _mpix(fn, targets, preds, repeats) -> float:
    return targets.size / b._time(fn, targets, preds, repeats) / 1e6


def _check(fn, targets, preds, reference, label):
    if not np.array_equal(fn(targets, preds), reference):
        raise AssertionError(f"{label} disagrees with numpy")


def per_image_rows(name, targets, preds, threads_all, repeats, slow_images):
    reference = b.numpy_bincount(targets, preds)
    ours1, oursn = b.ours_per_image(1), b.ours_per_image(threads_all)
    _check(ours1, targets, preds, reference, "per image, 1 thread")
    _check(oursn, targets, preds, reference, "per image, all threads")
    r = {
        "ours1": _mpix(ours1, targets, preds, repeats),
        "oursn": _mpix(oursn, targets, preds, repeats),
        "numpy": _mpix(b.numpy_bincount, targets, preds, repeats),
        "stream1": _mpix(b.stream_read(1), targets, preds, repeats),
    }
    if b._peer_available("torchmetrics"):
        s = slice(0, min(slow_images, targets.shape[0]))
        r["torchmetrics"] = _mpix(b._with_torch_threads(b.torchmetrics_confmat, 1), targets[s], preds[s],
                                  max(1, repeats // 2))
    else:
        r["torchmetrics"] = float("nan")
    return r


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--widths", type=int, nargs="+", default=[100, 683, 2048])
    ap.add_argument("--densities", type=float, nargs="+", default=[2, 16, 40])
    ap.add_argument("--pixels", type=float, default=4e6, help="pixels per synthetic data set (default 4e6)")
    ap.add_argument("--slow-images", type=int, default=2, help="maps for torchmetrics")
    ap.add_argument("--beyond-cache", type=int, default=300, metavar="MIB", help="batch size (0: skip)")
    args = ap.parse_args(argv)
    t_all = args.threads
    print(f"# load before: {os.getloadavg()}; cpus {os.cpu_count()}; all threads = {t_all}; simd {b.simd()}")

    sets = [("real ADE20K 300x400", *b.network_real(24))]
    for w in args.widths:
        h = max(8, min(w * 3 // 4, 384))
        n = int(max(1, min(64, args.pixels // (h * w))))
        for d in args.densities:
            sets.append((f"synthetic {h}x{w} d={d:g}", *b.network_synthetic(n, h, w, d)))

    print("\n| data | maps | accuracy | changes/row target, pred | ours 1 thr Mpix/s | x numpy | x torchmetrics "
          "| % stream 1 thr | ours all thr Mpix/s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, t, p in sets:
        r = per_image_rows(name, t, p, t_all, args.repeats, args.slow_images)
        print(f"| {name} | {t.shape[0]} | {100 * b.pixel_accuracy(t, p):.1f}% | "
              f"{b.changes_per_row(t):.1f}, {b.changes_per_row(p):.1f} | {r['ours1']:.0f} | "
              f"{r['ours1'] / r['numpy']:.1f}x | {r['ours1'] / r['torchmetrics']:.0f}x | "
              f"{100 * r['ours1'] / r['stream1']:.0f}% | {r['oursn']:.0f} |", flush=True)

    # int64 inputs, real network-like data
    t8, p8 = sets[0][1], sets[0][2]
    t64, p64 = t8.astype(np.int64), p8.astype(np.int64)
    ref = b.numpy_bincount(t64, p64)
    _check(b.ours_per_image(1), t64, p64, ref, "int64")
    o, nb = _mpix(b.ours_per_image(1), t64, p64, args.repeats), _mpix(b.numpy_bincount, t64, p64, args.repeats)
    print(f"\nint64, real ADE20K network-like, 1 thread per image: ours {o:.0f} Mpix/s, numpy {nb:.0f}: {o / nb:.1f}x")

    if args.beyond_cache:
        nbytes = args.beyond_cache << 20
        mid = 1 + len(args.densities) * (len(args.widths) // 2) + len(args.densities) // 2  # middle width and density
        for name, t, p in (sets[0], sets[min(len(sets) - 1, mid)]):
            big_t, big_p = b._repeat_to(t, nbytes // 2), b._repeat_to(p, nbytes // 2)
            mib = (big_t.nbytes + big_p.nbytes) >> 20
            line = [f"beyond cache {name}, {mib} MiB:"]
            for thr in sorted({1, t_all}):
                ours = b.ours_batch(thr)
                ref = b.numpy_bincount(big_t[:4], big_p[:4])
                _check(ours, big_t[:4], big_p[:4], ref, "batch")
                a = _mpix(ours, big_t, big_p, args.repeats)
                s = _mpix(b.stream_read(thr), big_t, big_p, args.repeats)
                s1 = _mpix(b.stream_read(1), big_t, big_p, args.repeats) if thr != 1 else s
                line.append(f"{thr} thr ours {a:.0f} Mpix/s, stream {s:.0f} ({100 * a / s:.0f}%, "
                            f"{100 * a / s1:.0f}% of 1-thr stream);")
            print(" ".join(line), flush=True)
    print(f"# load after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
