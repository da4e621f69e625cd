"""Per-image cost of ImageStats.update against ConfusionMatrix.update: python bench/bench_image_stats.py.

One thread, ADE20K-like 512x683 uint8 maps (the bench data), the two calls
interleaved round by round so that a busy machine slows both alike; prints
the median per-call time of each, their ratio, the spread over rounds, and
the memory ImageStats keeps per image.  Never part of the test run.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import ade20k_metrics as am
from ade20k_metrics.cli.benchmark import ade20k_like
from ade20k_metrics.io.report import cpu_model


def per_call_ms(fn, maps: int, calls: int) -> float:
    start = time.perf_counter()
    for i in range(calls):
        fn(i % maps)
    return (time.perf_counter() - start) / calls * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--maps", type=int, default=8)
    parser.add_argument("--calls", type=int, default=400, help="calls per round")
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    targets, preds = ade20k_like(args.maps, seed=3)
    cm = am.ConfusionMatrix(150, n_threads=1)
    stats = am.ImageStats(150, n_threads=1)
    for i in range(args.maps):  # warm-up
        cm.update(preds[i], targets[i])
        stats.update(preds[i], targets[i])
    cm_times, stats_times = [], []
    for _ in range(args.rounds):
        stats.reset()
        cm_times.append(per_call_ms(lambda i: cm.update(preds[i], targets[i]), args.maps, args.calls))
        stats_times.append(per_call_ms(lambda i: stats.update(preds[i], targets[i]), args.maps, args.calls))
    ratios = np.array(stats_times) / np.array(cm_times)
    record_bytes = np.mean([r.nbytes for r in stats.records()])
    present = np.mean([r.shape[1] for r in stats.records()])
    print(f"512x683 uint8, 1 thread, median of {args.rounds} rounds of {args.calls} calls "
          f"(CPU: {cpu_model()})")
    print(f"ConfusionMatrix.update  {np.median(cm_times):.4f} ms  (rounds {min(cm_times):.4f}..{max(cm_times):.4f})")
    print(f"ImageStats.update       {np.median(stats_times):.4f} ms  "
          f"(rounds {min(stats_times):.4f}..{max(stats_times):.4f})")
    print(f"ratio                   {np.median(ratios):.2f}  (rounds {ratios.min():.2f}..{ratios.max():.2f})")
    print(f"kept per image          {record_bytes:.0f} bytes of counts ({present:.1f} classes present; "
          f"a 150 x 150 matrix would be {150 * 150 * 8} bytes)")


if __name__ == "__main__":
    main()
