"""update_logits(..., resize="bilinear") against interpolate + argmax + bincount: time and peak memory.

Low-resolution logits (a network's output, here smooth random maps) are
upsampled to the label size.  Methods:

  fused    ConfusionMatrix.update_logits(low, target, resize="bilinear")
  torch    F.interpolate(low, size, mode="bilinear", align_corners=False), argmax(1), mask 255, bincount
  interp+fused   F.interpolate, then ConfusionMatrix.update_logits(up, target) (argmax fused, resize not)

Time: medians of ``--repeats`` runs in this process.  Peak memory: each
method once in a fresh subprocess, the highest resident set (sampled every
0.2 ms from /proc/self/statm, Linux) above the one before the call.  Agreement: pixels whose
predicted class differs from torch's, bounded by half the L1 distance of the
two matrices (differences come only from near ties, see core/resize.py).

    python bench/bench_resize.py [--repeats 5] [--threads N ...] [--shapes 1x150x128x171x512x683 ...]

Not part of the test run.  Prints the CPU model and thread counts with the results.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time

import numpy as np
import torch

import ade20k_metrics as am
from ade20k_metrics.io.report import cpu_model

F = torch.nn.functional


def make_inputs(n: int, k: int, h: int, w: int, hh: int, ww: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randn((n, k, max(1, h // 8), max(1, w // 8)), generator=g)
    low = F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False).contiguous()
    # Ground truth: the argmax of a perturbed copy at low resolution, nearest-upsampled (no full-resolution
    # float buffer here, so the peak-memory children measure only the method), 255 on a border.
    noisy = low + 0.7 * F.interpolate(torch.randn(coarse.shape, generator=g), size=(h, w), mode="bilinear")
    small = noisy.argmax(1).to(torch.uint8)
    rows = torch.arange(hh) * h // hh
    cols = torch.arange(ww) * w // ww
    target = small[:, rows][:, :, cols]
    target[:, :4, :] = 255
    return low, target.contiguous()


def torch_matrix(low: torch.Tensor, target: torch.Tensor, k: int) -> torch.Tensor:
    up = F.interpolate(low.float(), size=tuple(target.shape[-2:]), mode="bilinear", align_corners=False)
    pred = up.argmax(1)
    keep = target != 255
    return torch.bincount(target[keep].to(torch.int64) * k + pred[keep], minlength=k * k).reshape(k, k)


def run_method(method: str, low, target, k: int, threads: int):
    if method == "fused":
        return am.ConfusionMatrix(k, n_threads=threads).update_logits(low, target, resize="bilinear").matrix
    if method == "torch":
        return torch_matrix(low, target, k).numpy()
    up = F.interpolate(low.float(), size=tuple(target.shape[-2:]), mode="bilinear", align_corners=False)
    return am.ConfusionMatrix(k, n_threads=threads).update_logits(up, target).matrix


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_child(spec: str) -> None:
    """Run one method once; print the peak of (resident set - resident set before), sampled every 0.2 ms."""
    shape, dtype, method, threads = spec.split(":")
    n, k, h, w, hh, ww = (int(v) for v in shape.split("x"))
    torch.set_num_threads(int(threads))
    low, target = make_inputs(n, k, h, w, hh, ww)
    low = low.to(getattr(torch, dtype))
    base = _rss_bytes()
    peak = [base]
    done = threading.Event()

    def watch():
        while not done.is_set():
            peak[0] = max(peak[0], _rss_bytes())
            time.sleep(0.0002)

    watcher = threading.Thread(target=watch)
    watcher.start()
    run_method(method, low, target, k, int(threads))
    peak[0] = max(peak[0], _rss_bytes())
    done.set()
    watcher.join()
    print(json.dumps({"peak_mib": (peak[0] - base) / 2**20}))


def peak_mib(shape: str, dtype: str, method: str, threads: int) -> float:
    out = subprocess.run([sys.executable, __file__, "--peak-child", f"{shape}:{dtype}:{method}:{threads}"],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_mib"]


def median_time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, nargs="*", default=None,
                    help="thread counts to run (default: 1 and the package default)")
    ap.add_argument("--shapes", nargs="*", default=["1x150x128x171x512x683", "4x19x128x256x512x1024"],
                    help="N x C x h x w (logits) x H x W (labels)")
    ap.add_argument("--dtypes", nargs="*", default=["float32"])
    ap.add_argument("--peak-child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.peak_child:
        _peak_child(args.peak_child)
        return
    threads_list = args.threads or sorted({1, am.default_threads()})

    print(f"CPU: {cpu_model()}; ade20k_metrics {am.__version__} (simd {am.simd()}, "
          f"OpenMP {am.openmp_enabled()}); torch {torch.__version__}; medians of {args.repeats}")
    print()
    print("| logits -> labels | dtype | threads | fused ms | torch ms | torch / fused | interp+fused ms | "
          "fused peak MiB | torch peak MiB | pixels differing |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for shape in args.shapes:
        n, k, h, w, hh, ww = (int(v) for v in shape.split("x"))
        low32, target = make_inputs(n, k, h, w, hh, ww)
        for dtype in args.dtypes:
            low = low32.to(getattr(torch, dtype))
            for threads in threads_list:
                torch.set_num_threads(threads)
                ours = run_method("fused", low, target, k, threads)
                theirs = run_method("torch", low, target, k, threads)
                differing = int(np.abs(ours - theirs).sum()) // 2
                t = {m: median_time(lambda m=m: run_method(m, low, target, k, threads), args.repeats)
                     for m in ("fused", "torch", "interp+fused")}
                peaks = {m: peak_mib(shape, dtype, m, threads) for m in ("fused", "torch")}  # noqa: E501
                print(f"| {n}x{k}x{h}x{w} -> {hh}x{ww} | {dtype} | {threads} | {t['fused'] * 1e3:.1f} | "
                      f"{t['torch'] * 1e3:.1f} | {t['torch'] / t['fused']:.2f}x | {t['interp+fused'] * 1e3:.1f} | "
                      f"{peaks['fused']:.1f} | {peaks['torch']:.1f} | {differing} of {n * hh * ww} |", flush=True)


if __name__ == "__main__":
    main()
