"""The ``ade20k-metrics`` command line."""
from __future__ import annotations

import argparse
import sys

import numpy as np


def _fmt(x: float) -> str:
    return "   nan" if np.isnan(x) else f"{100 * x:6.2f}"


def cmd_demo(args: argparse.Namespace) -> int:
    from . import ConfusionMatrix, ade20k, default_threads, openmp_enabled, simd

    names = ade20k.class_names()
    cm = ConfusionMatrix(ade20k.NUM_CLASSES, reduce_zero_label=True, n_threads=args.threads)
    samples = ade20k.sample_annotations()
    for i, (name, gt) in enumerate(samples.items()):
        pred = ade20k.simulate_prediction(gt, seed=i) - 1  # official 1..150 format -> train ids
        cm.update(pred, gt)
    m = cm.compute()
    print(f"ade20k-metrics demo: {len(samples)} real ADE20K validation annotations "
          f"({cm.total} evaluated pixels) against simulated predictions")
    print(f"kernel: OpenMP {'on' if openmp_enabled() else 'off'}, {simd()}, default threads {default_threads()}")
    print()
    print(f"{'class':<20} {'IoU':>6} {'Acc':>6}")
    gt_pixels = cm.matrix.sum(axis=1)
    pred_pixels = cm.matrix.sum(axis=0)
    for c in np.flatnonzero((gt_pixels > 0) | (pred_pixels > 0)):
        print(f"{names[c]:<20} {_fmt(m.iou[c])} {_fmt(m.acc[c])}")
    print()
    print(f"mIoU {_fmt(m.miou)}   mAcc {_fmt(m.macc)}   aAcc {_fmt(m.aacc)}   (percent, mmseg convention)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ade20k-metrics", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="score the bundled real ADE20K annotations against simulated predictions")
    demo.add_argument("--threads", type=int, default=None, help="kernel threads (default: all available)")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
