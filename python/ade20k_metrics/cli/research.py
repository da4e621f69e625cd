"""``evaluate``'s research outputs: --per-image FILE.csv, --ci LEVEL (--bootstrap N, --seed S), --latex FILE.tex.

``main.cmd_evaluate`` asks ``wants_image_stats`` whether to keep every
image's counts, then hands the accumulator here: the interval goes into the
printed table and the JSON (``metrics.miou_ci`` = [low, high], ``ci`` = how it
was computed), and the CSV and LaTeX texts are made in memory before any file
is written.
"""
from __future__ import annotations

import argparse
import math

DEFAULT_RESAMPLES = 1000
DEFAULT_SEED = 0


def confidence_level(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a confidence level such as 0.95, got {text!r}") from None
    if not (math.isfinite(value) and 0 < value < 1):
        hint = f" (for {value:g}% write {value / 100:g})" if 1 < value < 100 else ""
        raise argparse.ArgumentTypeError(f"expected a confidence level in (0, 1) such as 0.95, got {text!r}{hint}")
    return value


def resamples(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of resamples, got {text!r}") from None
    if not 1 <= value <= 10**7:
        raise argparse.ArgumentTypeError(f"expected a number of resamples from 1 to 10000000, got {value}")
    return value


def seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer seed, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer seed, got {value}")
    return value


def add_interval_options(p: argparse.ArgumentParser, *, ci_default: float | None) -> None:
    shown = f" (default: {ci_default:g})" if ci_default is not None else ""
    p.add_argument("--ci", type=confidence_level, default=ci_default, metavar="LEVEL",
                   help="confidence interval of mIoU at this level, e.g. 0.95: percentile bootstrap "
                        f"resampling whole images{shown}")
    p.add_argument("--bootstrap", type=resamples, default=DEFAULT_RESAMPLES, metavar="N",
                   help=f"bootstrap resamples for --ci (default: {DEFAULT_RESAMPLES})")
    p.add_argument("--seed", type=seed, default=DEFAULT_SEED, metavar="S",
                   help=f"random seed of the resampling, for reproducible intervals (default: {DEFAULT_SEED})")


def add_evaluate_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--per-image", metavar="FILE.csv",
                   help="write one row per image: image, pixels, miou, aacc, iou_0..iou_{K-1} (fractions)")
    add_interval_options(p, ci_default=None)
    p.add_argument("--latex", metavar="FILE.tex",
                   help="write the summary and per-class tables as LaTeX (booktabs)")


OUTPUTS = ("per_image", "latex")


def wants_image_stats(args: argparse.Namespace) -> bool:
    return args.per_image is not None or args.ci is not None


def interval(stats, args: argparse.Namespace) -> dict | None:
    """{"low", "high", "confidence", "resamples", "seed", "method"} of the mIoU, or None without --ci."""
    if args.ci is None:
        return None
    ci = stats.bootstrap_miou(args.bootstrap, confidence=args.ci, convention=args.convention, seed=args.seed)
    return {"low": ci.low, "high": ci.high, "confidence": ci.confidence, "resamples": ci.n_resamples,
            "seed": args.seed, "images": len(stats), "estimate_inside": _inside(ci.estimate, ci.low, ci.high),
            "method": "percentile bootstrap over images (resample images with replacement, sum their counts, "
                      "recompute the dataset mIoU)"}


def _inside(estimate, low, high) -> bool | None:
    """Whether the estimate lies in [low, high] (None where any of them is undefined)."""
    if not all(isinstance(x, float) and math.isfinite(x) for x in (estimate, low, high)):
        return None
    return bool(low <= estimate <= high)


# Why a percentile interval can miss its own estimate, in the words printed under the table.
OUTSIDE_NOTE = ("note: the estimate lies outside its percentile interval: per-class IoU is a ratio of sums, so "
                "with few images per class the resampled values are biased (Jensen's inequality) and the "
                "interval is unreliable at this number of images; evaluate more images")


def interval_line(ci: dict | None) -> str:
    if ci is None:
        return ""
    line = (f"mIoU {100 * ci['confidence']:g}% CI [{100 * ci['low']:.2f}, {100 * ci['high']:.2f}] "
            f"(percentile bootstrap over {ci['images']} images, {ci['resamples']} resamples, seed {ci['seed']})\n")
    if ci.get("estimate_inside") is False:
        line += OUTSIDE_NOTE + "\n"
    return line


def extend_report(document: dict, ci: dict | None) -> dict:
    """The evaluate JSON with ``metrics.miou_ci`` and ``ci`` added (when there is an interval)."""
    if ci is not None:
        document["metrics"]["miou_ci"] = [_finite(ci["low"]), _finite(ci["high"])]
        document["ci"] = {k: _finite(v) for k, v in ci.items()}
    return document


def _finite(x):
    return None if isinstance(x, float) and not math.isfinite(x) else x


def reserve(args: argparse.Namespace, outputs) -> None:
    """--per-image and --latex reserved in an io.report.OutputSet before the work (an unwritable one fails now)."""
    for option in OUTPUTS:
        path = getattr(args, option)
        if path is not None:
            outputs.add("--" + option.replace("_", "-"), path)


def write(outputs, texts: list[tuple[str, str]]) -> None:
    """Fill the reserved outputs and rename them all together."""
    for path, text in texts:
        outputs.write(path, lambda temporary, text=text: _write_text(temporary, text))
    outputs.commit()


def _write_text(path, text: str) -> None:
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(text)


def output_texts(args: argparse.Namespace, stats, scalars: dict, rows: list[dict], ci: dict | None,
                 images: int) -> list[tuple[str, str]]:
    """(path, text) of every research output asked for, all made before any is written."""
    from ..io.latex import evaluation_tables
    from ..io.per_image import per_image_csv

    out = []
    if args.per_image:
        out.append((args.per_image, per_image_csv(stats)))
    if args.latex:
        out.append((args.latex, evaluation_tables(args.name, scalars, rows, images=images,
                                                  convention=args.convention, ci=ci)))
    return out
