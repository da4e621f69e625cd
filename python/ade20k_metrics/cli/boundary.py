"""``evaluate``'s boundary metrics: --boundary [RATIO] (Boundary IoU) and --boundary-f1 [THETA] (BF score).

Both only choose the accumulator (``ConfusionMatrix(boundary=, boundary_f1=)``,
core/boundary.py); the reports (io/report.py, io/figures.py) add their
columns, summary lines, JSON fields and plot markers whenever the metrics
carry them.  docs/boundary.md says what each metric means.
"""
from __future__ import annotations

import argparse
import dataclasses
import math

DEFAULT_RATIO = 0.02      # boundary-iou-api's dilation_ratio default
DEFAULT_F1_RATIO = 0.0075  # DESIGN.md's BF threshold: 0.75 % of the image diagonal


def ratio(text: str) -> float:
    """A fraction of the image diagonal: a positive finite number (a usage error otherwise)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a fraction of the image diagonal such as {DEFAULT_RATIO}, got {text[:40]!r} "
            "(an option without a value goes after the folders, or write --boundary=RATIO)") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive fraction of the image diagonal, got {text[:40]!r}")
    return value


def add_evaluate_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--boundary", type=ratio, nargs="?", const=DEFAULT_RATIO, default=None, metavar="RATIO",
                   help="also report Boundary IoU per class and mBoundaryIoU (Cheng et al. 2021): inner bands "
                        "of width d = max(1, round(RATIO x image diagonal)) pixels, as boundary-iou-api's "
                        f"dilation_ratio (RATIO default: {DEFAULT_RATIO})")
    p.add_argument("--boundary-f1", type=ratio, nargs="?", const=DEFAULT_F1_RATIO, default=None, metavar="THETA",
                   help="also report the BF score per class and mBF (Csurka et al. 2013, MATLAB's bfscore): "
                        "contour pixels matched within THETA x image diagonal (THETA default: "
                        f"{DEFAULT_F1_RATIO})")


def requested(args: argparse.Namespace) -> bool:
    return getattr(args, "boundary", None) is not None or getattr(args, "boundary_f1", None) is not None


def usage_problem(args: argparse.Namespace, dataset: bool) -> str | None:
    """Why these boundary options cannot run with the rest of the command line (None: they can)."""
    if not requested(args):
        return None
    given = " and ".join(o for o, v in (("--boundary", args.boundary), ("--boundary-f1", args.boundary_f1))
                         if v is not None)
    if dataset:
        return f"{given} with --dataset is not available yet"
    others = [o for o, v in (("--per-image", getattr(args, "per_image", None)), ("--ci", getattr(args, "ci", None)))
              if v is not None]
    if others and args.boundary_f1 is not None:  # ImageStats keeps per-image Boundary IoU, not yet BF
        return f"--boundary-f1 with {', '.join(others)} is not available yet"
    return None


def with_options(label_format, args: argparse.Namespace):
    """The label format whose accumulator also counts the requested boundary metrics (check usage_problem first)."""
    if not requested(args):
        return label_format
    return dataclasses.replace(label_format, boundary=args.boundary, boundary_f1=args.boundary_f1)
