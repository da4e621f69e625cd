"""The ``ade20k-metrics`` command line.

Exit status: 0 success, 1 bad input (missing counterparts, unreadable or
wrong images, out-of-range labels, an output that cannot be written, a
missing optional library), 2 usage (bad options, a folder that does not
exist), 130 interrupted.
"""
from __future__ import annotations

import argparse
import math
import os
import shlex
import sys
import time

import numpy as np

CONVENTIONS = ("mmseg", "torchmetrics", "detectron2", "csail")

DESCRIPTION = """\
Semantic-segmentation metrics for ADE20K and any label-map benchmark: scores
folders of predicted label PNGs against ground truth (confusion matrix, IoU,
mIoU, accuracy) exactly as mmseg, torchmetrics, detectron2 or the ADE20K
devkit count them, with confidence intervals, paired comparisons of two runs,
per-image results, LaTeX tables and figures.

examples:
  ade20k-metrics evaluate PRED_DIR GT_DIR --ci 0.95 --json run.json --latex run.tex --plot run.pdf
  ade20k-metrics compare BASELINE_DIR PRED_DIR GT_DIR --markdown compare.md --latex compare.tex
  ade20k-metrics demo

Exit status: 0 success, 1 bad input (missing counterparts, unreadable or
wrong images, out-of-range labels, an output that cannot be written, a
missing optional library), 2 usage (bad options, a folder that does not
exist), 130 interrupted."""
EXIT_OK, EXIT_BAD_INPUT, EXIT_USAGE = 0, 1, 2
_MISSING_SHOWN = 10


class UsageError(Exception):
    """A command line that cannot be run as given (exit status 2)."""


def _fmt(x: float) -> str:
    return "   nan" if np.isnan(x) else f"{100 * x:6.2f}"


def _error(message: str) -> None:
    print(f"ade20k-metrics: error: {message}", file=sys.stderr)


def _warn(message: str) -> None:
    print(f"ade20k-metrics: warning: {message}", file=sys.stderr)


# -- demo ---------------------------------------------------------------------------------------------

def cmd_demo(args: argparse.Namespace) -> int:
    from ..core.confusion import ConfusionMatrix
    from ..core.kernel import openmp_enabled, simd
    from ..core.threads import default_threads
    from ..datasets import ade20k

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


# -- progress -----------------------------------------------------------------------------------------

class _Progress:
    """A progress bar on stderr: tqdm's if installed, else a one-line counter redrawn a few times a second."""

    def __init__(self, total: int, enabled: bool, desc: str = "evaluate"):
        self.total = total
        self.enabled = enabled
        self._desc = desc
        self._tqdm = None
        self._start = time.perf_counter()
        self._last_draw = self._start  # first line after a moment, when the rate means something
        self._done = 0
        if not enabled:
            return
        try:
            from tqdm import tqdm
        except ImportError:
            return
        self._tqdm = tqdm(total=total, desc=desc, unit="pair", file=sys.stderr, leave=False)

    def update(self, done: int) -> None:
        if not self.enabled:
            return
        if self._tqdm is not None:
            self._tqdm.update(done - self._done)
            self._done = done
            return
        self._done = done
        now = time.perf_counter()
        if now - self._last_draw < 0.2 and done < self.total:
            return
        self._last_draw = now
        rate = done / max(now - self._start, 1e-9)
        left = (self.total - done) / rate if rate > 0 else math.inf
        eta = f"{int(left) // 60}:{int(left) % 60:02d}" if math.isfinite(left) else "?"
        sys.stderr.write(f"\r{self._desc}: {done}/{self.total} pairs ({100 * done / max(self.total, 1):3.0f}%), "
                         f"{rate:.0f} pairs/s, {eta} left ")
        sys.stderr.flush()

    def close(self) -> None:
        if not self.enabled:
            return
        if self._tqdm is not None:
            self._tqdm.close()
        else:
            sys.stderr.write("\r\033[K")
        # What the bar showed, kept: pairs, seconds and pairs per second of the whole run.
        seconds = time.perf_counter() - self._start
        sys.stderr.write(f"{self._desc}: {self._done} pairs in {seconds:.1f} s "
                         f"({self._done / max(seconds, 1e-9):.0f} pairs/s)\n")
        sys.stderr.flush()


# -- shared option handling ---------------------------------------------------------------------------

def _ignore_index(text: str) -> int | None:
    if text.lower() == "none":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer label or 'none', got {text!r}") from None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _percent(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected mIoU in percent, got {text!r}") from None
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"expected mIoU in percent (0..100), got {value}")
    return value


def _add_label_format_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--num-classes", type=_positive_int, default=150, metavar="K",
                   help="number of classes (default: 150, ADE20K)")
    p.add_argument("--ignore-index", type=_ignore_index, default=255, metavar="LABEL",
                   help="ground-truth label never evaluated, or 'none' (default: 255)")
    p.add_argument("--pred-zero-based", action="store_true",
                   help="predictions hold class ids 0..K-1 (default: the official 1..K format)")
    p.add_argument("--gt-zero-based", "--no-reduce-zero-label", action="store_true",
                   help="ground truth holds 0..K-1 (default: ADE20K's 1..K with 0 = other, not evaluated)")
    p.add_argument("--reduce-zero-label", action="store_true",
                   help="mmseg's name for the default: ground truth 0 = other (not evaluated), k -> class k-1; "
                        "--no-reduce-zero-label is --gt-zero-based")
    p.add_argument("--resize", choices=["nearest"], default=None,
                   help="resize predictions whose size differs from the ground truth (nearest neighbour, "
                        "as the ADE20K devkit does); default: such a pair is an error")
    _add_dataset_options(p)


def _add_dataset_options(p: argparse.ArgumentParser) -> None:
    from ..datasets import registry

    p.add_argument("--dataset", choices=registry.names(), default=None, metavar="NAME",
                   help="read a benchmark's official files and score them as its official evaluation does: "
                        + ", ".join(registry.names()) + " (docs/datasets.md)")
    p.add_argument("--pred-colors", action="store_true",
                   help="with --dataset: predictions are RGB images colour-coded with the dataset's palette")
    p.add_argument("--pred-train-ids", action="store_true",
                   help="with --dataset: predictions hold class ids 0..K-1 (Cityscapes: trainIds) instead of "
                        "the official prediction format")


def _label_format(args: argparse.Namespace):
    from ..core.inputs import MAX_CLASSES
    from ..io.label_files import LabelFormat

    if args.dataset is not None or args.pred_colors or args.pred_train_ids:
        return _dataset_format(args)
    if args.num_classes > MAX_CLASSES:
        raise UsageError(f"--num-classes must be at most {MAX_CLASSES}, got {args.num_classes}")
    if args.reduce_zero_label and args.gt_zero_based:
        raise UsageError("--reduce-zero-label (ground truth 0 = other) contradicts --gt-zero-based / "
                         "--no-reduce-zero-label (ground truth 0..K-1)")
    return LabelFormat(num_classes=args.num_classes, ignore_index=args.ignore_index,
                       gt_zero_based=args.gt_zero_based, pred_zero_based=args.pred_zero_based, resize=args.resize)


def _dataset_format(args: argparse.Namespace):
    from ..io.dataset_files import dataset_format

    if args.dataset is None:
        raise UsageError("--pred-colors and --pred-train-ids need --dataset NAME")
    given = [option for option, on in (("--num-classes", args.num_classes != 150),
                                       ("--ignore-index", args.ignore_index != 255),
                                       ("--gt-zero-based", args.gt_zero_based),
                                       ("--pred-zero-based", args.pred_zero_based), ("--resize", args.resize))
             if on]
    if given:
        raise UsageError(f"--dataset {args.dataset} sets the label format; drop {', '.join(given)}"
                         + (" (use --pred-train-ids for 0-based predictions)" if args.pred_zero_based else ""))
    if args.dataset != "ade20k" and (getattr(args, "params", None) is not None or getattr(args, "leaderboard_plot", None)):
        raise UsageError(f"--params and --leaderboard-plot rank a run on the ADE20K leaderboard, not {args.dataset}")
    unsupported = [f"--{o.replace('_', '-')}" for o in ("per_image", "ci") if getattr(args, o, None) is not None]
    if unsupported:
        raise UsageError(f"{', '.join(unsupported)} with --dataset is not available yet")
    try:
        return dataset_format(args.dataset, pred_train_ids=args.pred_train_ids, pred_colors=args.pred_colors)
    except ValueError as e:
        raise UsageError(str(e)) from None


def _check_output_path(path: str | None, option: str) -> None:
    if path is None:
        return
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise UsageError(f"{option} {path}: folder {parent} does not exist")
    if os.path.isdir(path):
        raise UsageError(f"{option} {path}: is a folder")


def _list_names(names: tuple[str, ...]) -> str:
    shown = ", ".join(names[:_MISSING_SHOWN])
    return shown + (f", ... and {len(names) - _MISSING_SHOWN} more" if len(names) > _MISSING_SHOWN else "")


# -- evaluate -----------------------------------------------------------------------------------------

def cmd_evaluate(args: argparse.Namespace) -> int:
    from ..io.report import OutputSet

    with OutputSet() as research_outputs:  # --per-image and --latex: written together, or not at all
        return _evaluate(args, research_outputs)


def _evaluate(args: argparse.Namespace, research_outputs) -> int:
    from ..core.threads import resolve_threads
    from ..io import report
    from ..io.dataset_files import evaluate_dataset_pairs
    from ..io.label_files import evaluate_pairs, pair_folders
    from ..metrics.compute import compute_metrics
    from . import research

    label_format = _label_format(args)
    dataset = args.dataset is not None
    if args.convention is None:  # the dataset's official convention, else mmseg's
        args.convention = label_format.convention if dataset else "mmseg"
    for option in ("json", "csv", "markdown", "plot", "leaderboard_plot", *research.OUTPUTS):
        _check_output_path(getattr(args, option), "--" + option.replace("_", "-"))
    for folder in (args.pred_dir, args.gt_dir):
        if not os.path.isdir(folder):
            raise UsageError(f"{folder}: not a folder")
    # Fail before decoding thousands of images, not after: convention and optional libraries.
    try:
        compute_metrics(np.zeros((label_format.num_classes,) * 2, dtype=np.int64), convention=args.convention)
    except ValueError as e:
        raise UsageError(f"--convention {args.convention}: {e}") from None
    if args.plot or args.leaderboard_plot:
        report.import_pyplot()
    threads = resolve_threads(args.threads)
    research.reserve(args, research_outputs)

    pairing = label_format.pair_folders(args.pred_dir, args.gt_dir) if dataset else pair_folders(args.pred_dir,
                                                                                                 args.gt_dir)
    missing = []
    if pairing.missing_pred:
        missing.append(f"{len(pairing.missing_pred)} ground-truth file(s) in {args.gt_dir} have no prediction "
                       f"in {args.pred_dir}: {_list_names(pairing.missing_pred)}")
    if pairing.missing_gt:
        missing.append(f"{len(pairing.missing_gt)} prediction(s) in {args.pred_dir} have no ground truth "
                       f"in {args.gt_dir}: {_list_names(pairing.missing_gt)}")
    if missing and not args.allow_missing:
        for line in missing:
            _error(line)
        _error("pass --allow-missing to score the pairs that exist")
        return EXIT_BAD_INPUT
    if missing and not args.quiet:
        for line in missing:
            _warn(line + " (skipped: --allow-missing)")
    if not pairing.pairs:
        _error(f"no PNG pairs found (prediction folder {args.pred_dir}, ground-truth folder {args.gt_dir})")
        return EXIT_BAD_INPUT
    if args.params is not None or args.leaderboard_plot:  # before the work: can this run be ranked at all?
        from .leaderboard import protocol_problems

        problems = protocol_problems(label_format.num_classes, len(pairing.pairs))
        if problems and not args.rank_anyway:
            raise UsageError("not ranked on the ADE20K leaderboard: " + "; ".join(problems)
                             + " (pass --rank-anyway to rank it all the same, marked as not comparable)")

    progress = _Progress(len(pairing.pairs), enabled=not args.quiet and sys.stderr.isatty())
    started = time.perf_counter()
    try:
        if research.wants_image_stats(args):  # every image's counts, for --per-image and --ci
            from ..io.per_image import evaluate_per_image

            cm = evaluate_per_image(pairing.pairs, label_format, threads=threads, on_pair=progress.update)
        else:
            evaluate = evaluate_dataset_pairs if dataset else evaluate_pairs
            cm = evaluate(pairing.pairs, label_format, threads=threads, on_pair=progress.update)
    finally:
        progress.close()
    elapsed = time.perf_counter() - started
    metrics = cm.compute(convention=args.convention)

    classes = label_format.class_info() if dataset else report.ClassInfo.for_num_classes(label_format.num_classes)
    matrix = cm.class_matrix() if dataset else cm.matrix  # Cityscapes, COCO-Stuff: + a column of void predictions
    official = label_format.official_metrics(cm) if dataset else {}
    rows = report.per_class(matrix, metrics, classes)
    scalars = {**report.summary(metrics, classes), **official}
    print(report.format_table(rows, scalars, convention=args.convention, pixels=cm.total,
                              images=len(pairing.pairs)), end="")
    ci = research.interval(cm, args)
    print(research.interval_line(ci), end="")

    ranked = None
    if args.params is not None or args.leaderboard_plot:
        from . import leaderboard

        ranked = leaderboard.with_result(leaderboard.published(), 100 * scalars["miou"], args.params, args.name)
        problems = leaderboard.protocol_problems(label_format.num_classes, len(pairing.pairs))
        protocol = (f"{label_format.num_classes} classes, {len(pairing.pairs):,} images, {args.convention} convention"
                    + ("; NOT COMPARABLE: " + "; ".join(problems) if problems else ""))
        print()
        print(f"ADE20K leaderboard with {args.name} inserted (mIoU in percent, params in millions; this run: "
              f"{protocol}):")
        print(leaderboard.format_table(ranked), end="")
        print(leaderboard.verdict(ranked))

    env = report.environment(
        command=shlex.join(["ade20k-metrics", *args.argv]),
        threads=threads,
        convention=args.convention,
        **label_format.describe(),
        prediction_folder=args.pred_dir,
        ground_truth_folder=args.gt_dir,
        files=len(pairing.pairs),
        files_sha256=pairing.digest(),
        missing_predictions=len(pairing.missing_pred),
        missing_ground_truth=len(pairing.missing_gt),
        pixels=cm.total,
        seconds=round(elapsed, 3),
        name=args.name,
        params_millions=args.params,
    )
    if args.json:
        document = report.report_dict(matrix, metrics, classes, env)
        document["metrics"].update({k: None if math.isnan(v) else v for k, v in official.items()})
        report.write_json(args.json, research.extend_report(document, ci))
    research.write(research_outputs, research.output_texts(args, cm, scalars, rows, ci, len(pairing.pairs)))
    if args.csv:
        report.atomic_write_text(args.csv, report.csv_text(rows))
    if args.markdown:
        report.atomic_write_text(args.markdown, report.markdown_text(
            rows, scalars, convention=args.convention, images=len(pairing.pairs), pixels=cm.total))
    if args.plot:
        from ..io.figures import evaluation_figure

        evaluation_figure(args.plot, matrix, metrics, classes,
                          title=f"{args.name}: {len(pairing.pairs)} images, {args.convention} convention")
    if args.leaderboard_plot:
        from . import leaderboard

        leaderboard.plot(args.leaderboard_plot, ranked, protocol=protocol)
    return EXIT_OK


# -- compare ------------------------------------------------------------------------------------------

def cmd_compare(args: argparse.Namespace) -> int:
    from ..core.threads import resolve_threads
    from ..io import report
    from ..metrics.compute import check_convention
    from . import compare

    if args.dataset is not None:
        raise UsageError("compare with --dataset is not available yet")
    label_format = _label_format(args)
    for option in compare.OUTPUTS:
        _check_output_path(getattr(args, option), "--" + option.replace("_", "-"))
    for folder in (args.pred_a, args.pred_b, args.gt_dir):
        if not os.path.isdir(folder):
            raise UsageError(f"{folder}: not a folder")
    check_convention(args.convention)
    if args.plot:
        report.import_pyplot()
    threads = resolve_threads(args.threads)
    started = time.perf_counter()
    with report.OutputSet() as outputs:  # every output written, or none
        compare.reserve(args, outputs)
        doc = compare.run(args, label_format, threads,
                          lambda n: _Progress(n, enabled=not args.quiet and sys.stderr.isatty(), desc="compare"))
        env = report.environment(command=shlex.join(["ade20k-metrics", *args.argv]), threads=threads,
                                 convention=args.convention, **label_format.describe(), baseline_folder=args.pred_a,
                                 other_folder=args.pred_b, ground_truth_folder=args.gt_dir,
                                 seconds=round(time.perf_counter() - started, 3))
        return compare.finish(args, doc, env, outputs)


# -- show ---------------------------------------------------------------------------------------------

def cmd_show(args: argparse.Namespace) -> int:
    from ..core.reference import target_rows
    from ..io import report
    from ..io.label_files import InputError, LabelPair, label_error, load_pair, to_train_ids

    label_format = _label_format(args)
    _check_output_path(args.output, "-o")
    pair = LabelPair(key=os.path.basename(args.pred), pred=_existing_file(args.pred), gt=_existing_file(args.gt))
    if args.dataset is not None:
        pred_raw, gt, _ = label_format.load_pair(pair)
        checked = label_format.accumulator(n_threads=1)
        label_format.add_pair(checked, pair, pred_raw, gt, None)  # evaluate's checks and messages
        pred, gt_ids = label_format.class_ids(pred_raw, gt)
    else:
        pred_raw, gt = load_pair(pair, label_format)
        pred = to_train_ids(pred_raw, label_format)
        try:  # the same label checks as evaluate, with the same messages
            checked = label_format.accumulator(n_threads=1).update(pred, gt)
        except ValueError as e:
            raise label_error(pair, pred_raw, gt, label_format, e) from None
        gt_ids = target_rows(gt, label_format.num_classes, label_format.ignore_index, not label_format.gt_zero_based)
    photo = None
    if args.image:
        photo_path = _existing_file(args.image)
        photo = _read_photo(photo_path)
        if photo.shape[:2] != gt.shape:
            raise InputError(f"{photo_path}: image is {photo.shape[1]}x{photo.shape[0]} but the ground truth "
                             f"{pair.gt} is {gt.shape[1]}x{gt.shape[0]} (width x height)")
    palette = label_format.palette if args.dataset is not None else report.class_palette(label_format.num_classes)
    panels = report.comparison_panels(np.asarray(pred, dtype=np.int64), gt_ids, gt_ids >= 0, palette, photo)
    from ..io import figures

    classes = (label_format.class_info() if args.dataset is not None
               else report.ClassInfo.for_num_classes(label_format.num_classes))
    legend = figures.show_legend(np.asarray(pred, dtype=np.int64), gt_ids, gt_ids >= 0, classes.names, palette)
    title = figures.show_title(os.path.basename(args.pred), os.path.basename(args.gt), checked.compute())
    report.save_rgb(args.output, figures.labelled_panels(panels, title=title, legend=legend))
    return EXIT_OK


def _existing_file(path: str):
    from pathlib import Path

    if not os.path.isfile(path):
        raise UsageError(f"{path}: no such file")
    return Path(path)


def _read_photo(path) -> np.ndarray:
    from PIL import Image

    from ..io.label_files import InputError

    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise InputError(f"{path}: cannot read image: {e}") from None


# -- leaderboard --------------------------------------------------------------------------------------

def cmd_leaderboard(args: argparse.Namespace) -> int:
    from . import leaderboard

    if args.plot:
        _check_output_path(args.plot, "--plot")
    if args.miou is not None and 0 < args.miou < 1:
        _warn(f"--miou is in percent; {args.miou} ranks as {args.miou}%, not {100 * args.miou:g}%")
    if args.params is not None and args.miou is None:
        raise UsageError("--params needs --miou (the result to place)")
    entries = leaderboard.with_result(leaderboard.published(), args.miou, args.params, args.name)
    print("ADE20K val leaderboard (single-scale or as published; mIoU in percent, params in millions):")
    print(leaderboard.format_table(entries), end="")
    if args.miou is not None:
        print(leaderboard.verdict(entries))
        print("note: the table's figures are ADE20K-150 on the full validation set (2,000 images); a --miou "
              "from another protocol does not rank against them")
    if args.sources:
        print()
        print(leaderboard.format_sources(entries), end="")
    if args.plot:
        leaderboard.plot(args.plot, entries)
    return EXIT_OK


# -- bench --------------------------------------------------------------------------------------------

def cmd_bench(argv: list[str]) -> int:
    import importlib

    try:
        benchmark = importlib.import_module(f"{__package__}.benchmark")
    except ModuleNotFoundError as e:
        if e.name != f"{__package__}.benchmark":
            raise
        _error("the bench subcommand is not available in this installation (no ade20k_metrics.cli.benchmark)")
        return EXIT_BAD_INPUT
    status = benchmark.main(argv)
    return EXIT_OK if status is None else int(status)


# -- parser and entry point ---------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    from . import research

    from .._version import __version__

    parser = argparse.ArgumentParser(prog="ade20k-metrics", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"ade20k-metrics {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    ev = sub.add_parser(
        "evaluate", help="score a folder of predicted label PNGs against a folder of ground-truth PNGs",
        description="Score predicted label maps against ground truth. Files pair by relative path without "
                    "'.png' (both folders searched recursively, hidden entries skipped). Default: the "
                    "official ADE20K format, both folders 1..150, ground-truth 0 = other (not evaluated).")
    ev.add_argument("pred_dir", metavar="PRED_DIR", help="folder of predicted label PNGs")
    ev.add_argument("gt_dir", metavar="GT_DIR", help="folder of ground-truth annotation PNGs")
    _add_label_format_options(ev)
    ev.add_argument("--convention", choices=CONVENTIONS, default=None,
                    help="how undefined classes count in the means (default: mmseg, or with --dataset the "
                         "dataset's official convention)")
    ev.add_argument("--threads", type=_positive_int, default=None, metavar="N",
                    help="decoding threads (default: the CPUs available)")
    ev.add_argument("--allow-missing", action="store_true",
                    help="score the pairs that exist when files lack a counterpart (default: an error)")
    ev.add_argument("-q", "--quiet", action="store_true", help="no progress bar or warnings on stderr")
    ev.add_argument("--json", metavar="FILE", help="write metrics, per-class results, environment and matrix")
    ev.add_argument("--csv", metavar="FILE", help="write the per-class table as CSV (fractions)")
    ev.add_argument("--markdown", metavar="FILE", help="write summary and per-class tables as Markdown")
    ev.add_argument("--plot", metavar="FILE.png",
                    help="draw per-class IoU and the most-confused classes (needs matplotlib)")
    ev.add_argument("--params", type=_positive_float, default=None, metavar="M",
                    help="model size in millions of parameters: rank the run on the ADE20K leaderboard")
    ev.add_argument("--name", default="this run", help="the run's name in reports and the leaderboard")
    ev.add_argument("--leaderboard-plot", metavar="FILE.png",
                    help="draw the leaderboard's mIoU against size with this run (needs matplotlib)")
    ev.add_argument("--rank-anyway", action="store_true",
                    help="rank a run that is not ADE20K-150 on the full validation set (2,000 images) on the "
                         "leaderboard, marked as not comparable (default: refused)")
    research.add_evaluate_options(ev)
    ev.set_defaults(func=cmd_evaluate)

    cmp = sub.add_parser(
        "compare", help="compare two prediction folders on the same ground truth: mIoU difference, interval, p-value",
        description="Score two runs on the same ground-truth images in one pass and test the difference: the "
                    "mIoU of each with its bootstrap interval, B - A with its paired bootstrap interval and a "
                    "two-sided paired randomization test's p-value, per-class differences, the images that "
                    "changed most.")
    from . import compare

    compare.add_arguments(cmp)
    _add_label_format_options(cmp)
    cmp.add_argument("--convention", choices=CONVENTIONS, default="mmseg",
                     help="how undefined classes count in the means (default: mmseg)")
    cmp.add_argument("--threads", type=_positive_int, default=None, metavar="N",
                     help="decoding threads (default: the CPUs available)")
    cmp.add_argument("-q", "--quiet", action="store_true", help="no progress bar on stderr")
    cmp.set_defaults(func=cmd_compare)

    show = sub.add_parser("show", help="draw ground truth, prediction and errors side by side",
                          description="Write a colourised side-by-side of one prediction and its ground truth "
                                      "(and the photo, if given) in the ADE20K palette, errors in red.")
    show.add_argument("pred", metavar="PRED", help="predicted label PNG")
    show.add_argument("gt", metavar="GT", help="ground-truth annotation PNG")
    show.add_argument("image", metavar="IMAGE", nargs="?", help="the photo (optional)")
    show.add_argument("-o", "--output", required=True, metavar="OUT.png", help="where to write the picture")
    _add_label_format_options(show)
    show.set_defaults(func=cmd_show)

    board = sub.add_parser("leaderboard", help="published ADE20K results, optionally with yours ranked among them",
                           description="The published ADE20K-150 validation mIoU of well-known models, with "
                                       "parameter counts, test scale and the paper each figure comes from; "
                                       "give --miou (and --params) to see where a result of yours would rank "
                                       "and whether it is on the efficiency frontier.")
    board.add_argument("--miou", type=_percent, default=None, metavar="X", help="your mIoU in percent")
    board.add_argument("--params", type=_positive_float, default=None, metavar="M",
                       help="your model's size in millions of parameters")
    board.add_argument("--name", default="this result", help="your result's name in the table")
    board.add_argument("--plot", metavar="FILE.png", help="draw mIoU against size with the efficiency frontier")
    board.add_argument("--sources", action="store_true",
                       help="list where each published figure comes from (paper, table, test scale, status)")
    board.set_defaults(func=cmd_leaderboard)

    bench = sub.add_parser("bench", add_help=False, help="benchmark the kernel against its peers on this machine "
                                                          "(arguments go to the benchmark; try 'bench --help')")
    bench.add_argument("bench_args", nargs=argparse.REMAINDER)
    bench.set_defaults(func=lambda args: cmd_bench(args.bench_args))

    demo = sub.add_parser("demo", help="score the bundled real ADE20K annotations against simulated predictions",
                          description="A first look without any data: scores the three real ADE20K validation "
                                      "annotations shipped with the package against simulated predictions and "
                                      "prints the per-class table, the means and the kernel in use.")
    demo.add_argument("--threads", type=int, default=None, help="kernel threads (default: all available)")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    from ..io.label_files import InputError
    from ..io.report import MissingDependencyError, OutputError

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:
        # Everything after "bench" belongs to the benchmark, options included, which
        # argparse.REMAINDER alone would not pass through when the first one starts with "-".
        return cmd_bench(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = argv
    try:
        return args.func(args)
    except UsageError as e:
        parser.print_usage(sys.stderr)
        _error(str(e))
        return EXIT_USAGE
    except InputError as e:
        _error(str(e))
        return EXIT_BAD_INPUT
    except MissingDependencyError as e:
        _error(str(e))
        return EXIT_BAD_INPUT
    except OutputError as e:  # an output that cannot be written (io.report.OutputSet); none was replaced
        _error(str(e))
        return EXIT_BAD_INPUT
    except OSError as e:  # e.g. an output file that cannot be written
        _error(f"{e.filename}: {e.strerror or e}" if e.filename else str(e))
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        _error("interrupted (output files are written whole or not at all)")
        return 130


if __name__ == "__main__":
    sys.exit(main())
