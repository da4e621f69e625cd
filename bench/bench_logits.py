"""update_logits (argmax fused into the counting pass) against torch.argmax + torch.bincount.

Scores are smooth, like a network's upsampled logits: random low-resolution
maps, bilinearly upsampled, so the argmax map has regions, not noise.  Each
method runs ``--repeats`` times on the same data; medians are reported.

  fused          ConfusionMatrix.update_logits(logits, target)
  argmax+update  np.argmax (or torch.argmax) to an int64 map, then ConfusionMatrix.update
  torch          torch.argmax(logits, 1), mask ignored pixels, torch.bincount(K * t + p)

    python bench/bench_logits.py [--repeats 7] [--threads N] [--shapes 1x150x512x683 8x150x128x128]

Not part of the test run.  Prints the CPU model and thread counts with the results.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

import ade20k_metrics as am
from ade20k_metrics.io.report import cpu_model


def make_inputs(n: int, k: int, h: int, w: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    low = torch.randn((n, k, max(1, h // 16), max(1, w // 16)), generator=g)
    logits = torch.nn.functional.interpolate(low, size=(h, w), mode="bilinear", align_corners=False)
    # Ground truth: the argmax of a perturbed copy (about 80 % agreement), 255 on a border.
    noise = torch.nn.functional.interpolate(torch.randn(low.shape, generator=g), size=(h, w), mode="bilinear")
    target = torch.argmax(logits + 0.7 * noise, dim=1).to(torch.uint8)
    target[:, :4, :] = 255
    return logits.contiguous(), target.contiguous()


def torch_matrix(logits: torch.Tensor, target: torch.Tensor, k: int) -> torch.Tensor:
    pred = torch.argmax(logits, dim=1)
    keep = target != 255
    idx = target[keep].to(torch.int64) * k + pred[keep]
    return torch.bincount(idx, minlength=k * k).reshape(k, k)


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
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, nargs="*", default=None,
                    help="thread counts to run (default: 1 and the package default)")
    ap.add_argument("--shapes", nargs="*", default=["1x150x512x683", "8x150x128x128", "4x19x256x512"])
    ap.add_argument("--dtypes", nargs="*", default=["float32", "float16", "bfloat16"])
    args = ap.parse_args()
    threads_list = args.threads or sorted({1, am.default_threads()})

    print(f"CPU: {cpu_model()}; ade20k_metrics {am.__version__} (simd {am.simd()}, "
          f"OpenMP {am.openmp_enabled()}); torch {torch.__version__}; medians of {args.repeats}")
    print()
    print("| shape (N x C x H x W) | dtype | threads | fused ms | Mpix/s | torch ms | Mpix/s | "
          "torch / fused | argmax+update ms |")
    print("|---|---|---|---|---|---|---|---|---|")
    for shape in args.shapes:
        n, k, h, w = (int(v) for v in shape.split("x"))
        logits32, target = make_inputs(n, k, h, w)
        pixels = n * h * w
        for dtype_name in args.dtypes:
            logits = logits32.to(getattr(torch, dtype_name))
            expected = torch_matrix(logits, target, k).numpy()
            for threads in threads_list:
                torch.set_num_threads(threads)
                cm = am.ConfusionMatrix(k, n_threads=threads)
                cm.update_logits(logits, target)
                if not np.array_equal(cm.matrix, expected):
                    raise SystemExit(f"mismatch against torch for {shape} {dtype_name}")

                def fused():
                    cm.reset()
                    cm.update_logits(logits, target)

                def two_pass():
                    cm.reset()
                    cm.update(torch.argmax(logits, dim=1), target)

                t_fused = median_time(fused, args.repeats)
                t_torch = median_time(lambda: torch_matrix(logits, target, k), args.repeats)
                t_two = median_time(two_pass, args.repeats)
                print(f"| {shape} | {dtype_name} | {threads} | {t_fused * 1e3:.1f} | {pixels / t_fused / 1e6:.1f} | "
                      f"{t_torch * 1e3:.1f} | {pixels / t_torch / 1e6:.1f} | {t_torch / t_fused:.2f}x | "
                      f"{t_two * 1e3:.1f} |", flush=True)


if __name__ == "__main__":
    main()
