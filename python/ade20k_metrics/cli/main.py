"""The ``ade20k-metrics`` command line.

Exit status: 0 success, 1 bad input (missing counterparts, unreadable or
wrong images, out-of-range labels, an output that cannot be written, a
missing optional library), 2 usage (bad options, a folder that does not
exist), 130 interrupted (Ctrl-C), 143 terminated (SIGTERM).  A run writes all
of its output files or none of them.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import math
import os
import shlex
import signal
import sys
import threading
import time
import warnings

import numpy as np

CONVENTIONS = ("mmseg", "torchmetrics", "detectron2", "csail")
EXIT_OK, EXIT_BAD_INPUT, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 130, 143
_MISSING_SHOWN = 10
_INT64 = (-(2**63), 2**63 - 1)

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
exist), 130 interrupted (Ctrl-C), 143 terminated (SIGTERM).  A run writes all
of its output files or none of them."""


class UsageError(Exception):
    """A command line that cannot be run as given (exit status 2)."""


def _fmt(x: float) -> str:
    return "   nan" if np.isnan(x) else f"{100 * x:6.2f}"


def _printable(text) -> str:
    from ..io.report import printable

    return printable(text)


def _error(message: str) -> None:
    print(f"ade20k-metrics: error: {_printable(message)}", file=sys.stderr)


def _warn(message: str) -> None:
    print(f"ade20k-metrics: warning: {_printable(message)}", file=sys.stderr)


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
        self._tqdm = None
        self._start = time.perf_counter()
        self._last_draw = self._start  # first line after a moment, when the rate means something
        self._done = 0
        self._desc = desc
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

def _clip(text) -> str:
    text = _printable(text)
    return text if len(text) <= 40 else f"{text[:37]}... ({len(text)} characters)"


def _integer(text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:  # also a number of more than sys.get_int_max_str_digits() digits
        raise argparse.ArgumentTypeError(f"expected {what}, got {_clip(text)!r}") from None


def _ignore_index(text: str) -> int | None:
    if text.strip().lower() == "none":
        return None
    value = _integer(text, "an integer label or 'none'")
    lo, hi = _INT64
    if not lo <= value <= hi:
        raise argparse.ArgumentTypeError(f"expected a label that fits in 64 bits ({lo}..{hi}) or 'none', "
                                         f"got {_clip(value)}")
    return value


def _positive_int(text: str) -> int:
    value = _integer(text, "a positive integer")
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {_clip(value)}")
    return value


def _class_count(text: str) -> int:
    from ..core.inputs import MAX_CLASSES

    value = _integer(text, "a number of classes")
    if not 1 <= value <= MAX_CLASSES:
        raise argparse.ArgumentTypeError(f"expected a number of classes from 1 to {MAX_CLASSES}, got {_clip(value)}")
    return value


def _pixel_count(text: str) -> int | str:
    if text.strip().lower() == "none":
        return "none"
    return _positive_int(text)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {_clip(text)!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {_clip(text)!r}")
    return value


def _percent(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected mIoU in percent, got {_clip(text)!r}") from None
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"expected mIoU in percent (0..100), got {value}")
    return value


def _add_label_format_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--num-classes", type=_class_count, default=150, metavar="K",
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
    p.add_argument("--max-pixels", type=_pixel_count, default=None, metavar="N",
                   help="largest image to decode, in pixels, or 'none' (default: Pillow's decompression-bomb "
                        "limit, PIL.Image.MAX_IMAGE_PIXELS, 89478485 unless changed)")
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
    from ..io.label_files import LabelFormat

    if args.dataset is not None or args.pred_colors or args.pred_train_ids:
        return _dataset_format(args)
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
    try:
        return dataset_format(args.dataset, pred_train_ids=args.pred_train_ids, pred_colors=args.pred_colors)
    except ValueError as e:
        raise UsageError(str(e)) from None


def _check_outputs(outputs: list[tuple[str, str]]) -> None:
    """Usage errors in the output paths, before anything is read: a missing folder, a folder, a device, a clash."""
    seen: dict[str, str] = {}
    for option, path in outputs:
        shown = f"{option} {_printable(path)}"
        parent = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(parent):
            raise UsageError(f"{shown}: folder {_printable(parent)} does not exist")
        if os.path.isdir(path):
            raise UsageError(f"{shown}: is a folder")
        if os.path.exists(path) and not os.path.isfile(path):
            raise UsageError(f"{shown}: exists and is not a regular file (reports are written to files)")
        real = os.path.realpath(path)
        if real in seen:
            raise UsageError(f"{shown}: {seen[real]} writes the same file")
        seen[real] = option


def _check_outputs_spare_inputs(outputs: list[tuple[str, str]], inputs) -> None:
    """A usage error if an output would replace an input file (a picture over a ground-truth PNG)."""
    outputs = [(option, path) for option, path in outputs if os.path.exists(path)]  # only those can clash
    if not outputs:
        return
    by_name: dict[str, list] = {}
    for path in inputs:
        by_name.setdefault(os.path.basename(os.fspath(path)).lower(), []).append(path)
    for option, path in outputs:
        names = {os.path.basename(path).lower(), os.path.basename(os.path.realpath(path)).lower()}
        for name in names:
            for candidate in by_name.get(name, ()):
                with contextlib.suppress(OSError):
                    if os.path.samefile(path, candidate):
                        raise UsageError(f"{option} {_printable(path)}: is an input file ({_printable(candidate)}); "
                                         "an output must not replace it")


def _given_outputs(args: argparse.Namespace, options: tuple[str, ...]) -> list[tuple[str, str]]:
    return [("--" + name.replace("_", "-"), getattr(args, name)) for name in options
            if getattr(args, name) is not None]


def _list_names(names: tuple[str, ...]) -> str:
    shown = ", ".join(_printable(name) for name in names[:_MISSING_SHOWN])
    return shown + (f", ... and {len(names) - _MISSING_SHOWN} more" if len(names) > _MISSING_SHOWN else "")


# -- evaluate -----------------------------------------------------------------------------------------

_EVALUATE_OUTPUTS = ("json", "csv", "markdown", "plot", "leaderboard_plot")


def cmd_evaluate(args: argparse.Namespace) -> int:
    from ..core.threads import resolve_threads
    from ..io import report
    from ..io.dataset_files import evaluate_dataset_pairs
    from ..io.label_files import evaluate_pairs, find_label_maps, label_shift_warnings, pair_label_maps
    from ..metrics.compute import compute_metrics
    from . import boundary, research

    dataset = args.dataset is not None
    if boundary.usage_problem(args, dataset):  # --boundary, --boundary-f1
        raise UsageError(boundary.usage_problem(args, dataset))
    label_format = boundary.with_options(_label_format(args), args)
    if args.convention is None:  # the dataset's official convention, else mmseg's
        args.convention = label_format.convention if dataset else "mmseg"
    given = _given_outputs(args, _EVALUATE_OUTPUTS + research.OUTPUTS)
    _check_outputs(given)
    for folder in (args.pred_dir, args.gt_dir):
        if not os.path.isdir(folder):
            raise UsageError(f"{_printable(folder)}: not a folder")
    if os.path.samefile(args.pred_dir, args.gt_dir):
        raise UsageError(f"PRED_DIR and GT_DIR are the same folder ({_printable(args.pred_dir)}): every file "
                         "would be scored against itself")
    # Fail before decoding thousands of images, not after: convention and optional libraries.
    try:
        compute_metrics(np.zeros((label_format.num_classes,) * 2, dtype=np.int64), convention=args.convention)
    except ValueError as e:
        raise UsageError(f"--convention {args.convention}: {e}") from None
    if args.plot or args.leaderboard_plot:
        report.import_pyplot()
    threads = resolve_threads(args.threads)
    name = _printable(args.name)

    with report.OutputSet() as outputs:
        for option, path in given:  # an output that cannot be written fails here, before the work
            outputs.add(option, path)
        if dataset:  # the benchmark's own folder layout and file names
            pairing = label_format.pair_folders(args.pred_dir, args.gt_dir)
            _check_outputs_spare_inputs(given, [path for pair in pairing.pairs for path in (pair.pred, pair.gt)])
        else:
            preds, gts = find_label_maps(args.pred_dir), find_label_maps(args.gt_dir)
            _check_outputs_spare_inputs(given, [*preds.values(), *gts.values()])
            pairing = pair_label_maps(preds, gts)
        if not _pairing_usable(pairing, args):
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
        shift_warnings = label_shift_warnings(cm.matrix, label_format)  # labels off by one class
        if not args.quiet:
            for line in shift_warnings:
                _warn(line)

        classes = label_format.class_info() if dataset else report.ClassInfo.for_num_classes(label_format.num_classes)
        matrix = cm.class_matrix() if dataset else cm.matrix  # Cityscapes, COCO-Stuff: + a column of void predictions
        official = label_format.official_metrics(cm) if dataset else {}
        rows = report.per_class(matrix, metrics, classes)
        scalars = {**report.summary(metrics, classes), **official}
        ci = research.interval(cm, args)
        printed = [report.format_table(rows, scalars, convention=args.convention, pixels=cm.total,
                                       images=len(pairing.pairs)), research.interval_line(ci)]
        ranked = protocol = None
        if args.params is not None or args.leaderboard_plot:
            from . import leaderboard

            ranked = leaderboard.with_result(leaderboard.published(), 100 * scalars["miou"], args.params, name)
            problems = leaderboard.protocol_problems(label_format.num_classes, len(pairing.pairs))
            protocol = (f"{label_format.num_classes} classes, {len(pairing.pairs):,} images, "
                        f"{args.convention} convention" + ("; NOT COMPARABLE: " + "; ".join(problems) if problems else ""))
            printed.append(f"\nADE20K leaderboard with {name} inserted (mIoU in percent, params in millions; "
                           f"this run: {protocol}):\n"
                           + leaderboard.format_table(ranked) + leaderboard.verdict(ranked) + "\n")

        env = report.environment(
            command=_printable(shlex.join(["ade20k-metrics", *args.argv])),
            threads=threads,
            convention=args.convention,
            **label_format.describe(),
            prediction_folder=_printable(args.pred_dir),
            ground_truth_folder=_printable(args.gt_dir),
            files=len(pairing.pairs),
            files_sha256=pairing.digest(),
            missing_predictions=len(pairing.missing_pred),
            missing_ground_truth=len(pairing.missing_gt),
            pixels=cm.total,
            seconds=round(elapsed, 3),
            name=name,
            params_millions=args.params,
        )
        # Every output goes to its temporary first; only when all are written are they renamed together.
        if args.json:
            document = report.report_dict(matrix, metrics, classes, env)
            document["metrics"].update({k: None if math.isnan(v) else v for k, v in official.items()})
            document = research.extend_report(document, ci)
            document["warnings"] = shift_warnings
            outputs.write(args.json, lambda tmp: report.write_json(tmp, document))
        for path, text in research.output_texts(args, cm, scalars, rows, ci, len(pairing.pairs)):
            outputs.write(path, lambda tmp, text=text: report.atomic_write_text(tmp, text))
        if args.csv:
            outputs.write(args.csv, lambda tmp: report.atomic_write_text(tmp, report.csv_text(rows)))
        if args.markdown:
            text = report.markdown_text(rows, scalars, convention=args.convention, images=len(pairing.pairs),
                                        pixels=cm.total)
            outputs.write(args.markdown, lambda tmp: report.atomic_write_text(tmp, text))
        if args.plot:
            title = f"{name}: {len(pairing.pairs)} images, {args.convention} convention"
            from ..io.figures import evaluation_figure

            outputs.write(args.plot, lambda tmp: evaluation_figure(tmp, matrix, metrics, classes, title=title))
        if args.leaderboard_plot:
            from . import leaderboard

            outputs.write(args.leaderboard_plot, lambda tmp: leaderboard.plot(tmp, ranked, protocol=protocol))
        outputs.commit()
    sys.stdout.write("".join(printed))
    return EXIT_OK


def _pairing_usable(pairing, args: argparse.Namespace) -> bool:
    """Report files without a counterpart (errors, or warnings with --allow-missing); False if nothing can run."""
    from ..io.label_files import pairing_hints

    missing = []
    if pairing.missing_pred:
        missing.append(f"{len(pairing.missing_pred)} ground-truth file(s) in {_printable(args.gt_dir)} have no "
                       f"prediction in {_printable(args.pred_dir)}: {_list_names(pairing.missing_pred)}")
    if pairing.missing_gt:
        missing.append(f"{len(pairing.missing_gt)} prediction(s) in {_printable(args.pred_dir)} have no ground "
                       f"truth in {_printable(args.gt_dir)}: {_list_names(pairing.missing_gt)}")
    hints = pairing_hints(pairing, args.pred_dir, args.gt_dir) if missing else []
    if missing and not args.allow_missing:
        for line in missing + hints:
            _error(line)
        if not hints:  # where the layout explains it, --allow-missing would only score nothing
            _error("pass --allow-missing to score the pairs that exist")
        return False
    if missing and not args.quiet:
        for line in missing:
            _warn(line + " (skipped: --allow-missing)")
    if not pairing.pairs:
        _error(f"no PNG pairs found (prediction folder {_printable(args.pred_dir)}, ground-truth folder "
               f"{_printable(args.gt_dir)})")
        for line in hints:
            _error(line)
        return False
    return True


# -- compare ------------------------------------------------------------------------------------------

def cmd_compare(args: argparse.Namespace) -> int:
    from ..core.threads import resolve_threads
    from ..io import report
    from ..metrics.compute import check_convention
    from . import compare

    label_format = _label_format(args)
    if args.convention is None:  # the dataset's official convention, else mmseg's
        args.convention = label_format.convention if args.dataset is not None else "mmseg"
    given = _given_outputs(args, compare.OUTPUTS)
    _check_outputs(given)
    if args.top < 0:
        raise UsageError(f"--top must be 0 or more, got {args.top}")
    folders = (args.pred_a, args.pred_b, args.gt_dir)
    for folder in folders:
        if not os.path.isdir(folder):
            raise UsageError(f"{_printable(folder)}: not a folder")
    for i, j in ((0, 2), (1, 2)):
        if os.path.samefile(folders[i], folders[j]):
            raise UsageError(f"{('PRED_A', 'PRED_B')[i]} and GT_DIR are the same folder ({_printable(folders[i])})")
    check_convention(args.convention)
    if args.plot:
        report.import_pyplot()
    threads = resolve_threads(args.threads)
    started = time.perf_counter()
    with report.OutputSet() as outputs:  # every output written, or none
        compare.reserve(args, outputs)  # an output that cannot be written fails here, before the work
        doc = compare.run(args, label_format, threads,
                          lambda n: _Progress(n, enabled=not args.quiet and sys.stderr.isatty(), desc="compare"))
        if not args.quiet:
            for line in doc["warnings"]:
                _warn(line)
        env = report.environment(command=_printable(shlex.join(["ade20k-metrics", *args.argv])), threads=threads,
                                 convention=args.convention, **label_format.describe(),
                                 baseline_folder=_printable(args.pred_a), other_folder=_printable(args.pred_b),
                                 ground_truth_folder=_printable(args.gt_dir),
                                 seconds=round(time.perf_counter() - started, 3))
        return compare.finish(args, doc, env, outputs)


# -- show ---------------------------------------------------------------------------------------------

def cmd_show(args: argparse.Namespace) -> int:
    from ..core.reference import target_rows
    from ..io import report
    from ..io.label_files import InputError, LabelPair, label_error, load_pair, to_train_ids

    label_format = _label_format(args)
    given = [("-o", args.output)]
    _check_outputs(given)
    pair = LabelPair(key=os.path.basename(args.pred), pred=_existing_file(args.pred), gt=_existing_file(args.gt))
    inputs = [pair.pred, pair.gt]
    if args.image:
        inputs.append(_existing_file(args.image))
    _check_outputs_spare_inputs(given, inputs)
    with report.OutputSet() as outputs:
        outputs.add("-o", args.output)
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
            gt_ids = target_rows(gt, label_format.num_classes, label_format.ignore_index,
                                 not label_format.gt_zero_based)
        photo = None
        if args.image:
            photo_path = inputs[2]
            photo = _read_photo(photo_path)
            if photo.shape[:2] != gt.shape:
                raise InputError(f"{_printable(photo_path)}: image is {photo.shape[1]}x{photo.shape[0]} but the "
                                 f"ground truth {_printable(pair.gt)} is {gt.shape[1]}x{gt.shape[0]} "
                                 "(width x height)")
        palette = label_format.palette if args.dataset is not None else report.class_palette(label_format.num_classes)
        panels = report.comparison_panels(np.asarray(pred, dtype=np.int64), gt_ids, gt_ids >= 0, palette, photo)
        from ..io import figures

        classes = (label_format.class_info() if args.dataset is not None
                   else report.ClassInfo.for_num_classes(label_format.num_classes))
        legend = figures.show_legend(np.asarray(pred, dtype=np.int64), gt_ids, gt_ids >= 0, classes.names, palette)
        title = figures.show_title(_printable(os.path.basename(args.pred)), _printable(os.path.basename(args.gt)),
                                   checked.compute())
        picture = figures.labelled_panels(panels, title=title, legend=legend)
        outputs.write(args.output, lambda tmp: report.save_rgb(tmp, picture))
        outputs.commit()
    return EXIT_OK


def _existing_file(path: str):
    from pathlib import Path

    if os.path.isdir(path):
        raise UsageError(f"{_printable(path)}: is a folder, not a file")
    if not os.path.exists(path):
        if os.path.islink(path):
            raise UsageError(f"{_printable(path)}: broken symbolic link")
        raise UsageError(f"{_printable(path)}: no such file")
    if not os.path.isfile(path):
        raise UsageError(f"{_printable(path)}: not a regular file")
    return Path(path)


def _read_photo(path) -> np.ndarray:
    from ..io.label_files import InputError, check_pixels, read_file_bytes

    Image = _pillow()
    data = read_file_bytes(path)
    try:
        with Image.open(io.BytesIO(data)) as image:
            check_pixels(image.size, path)
            return np.asarray(image.convert("RGB"))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise InputError(f"{_printable(path)}: {e}; if the file is genuine, raise the limit with --max-pixels") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise InputError(f"{_printable(path)}: cannot read image: {_printable(e)}") from None


def _pillow():
    try:
        from PIL import Image
    except ImportError:
        from ..io.report import MissingDependencyError

        raise MissingDependencyError("reading images needs Pillow: pip install 'ade20k-metrics[cli]'") from None
    return Image


# -- leaderboard --------------------------------------------------------------------------------------

def cmd_leaderboard(args: argparse.Namespace) -> int:
    from ..io import report
    from . import leaderboard

    given = _given_outputs(args, ("plot",))
    _check_outputs(given)
    if args.miou is not None and 0 < args.miou < 1:
        _warn(f"--miou is in percent; {args.miou} ranks as {args.miou}%, not {100 * args.miou:g}%")
    if args.params is not None and args.miou is None:
        raise UsageError("--params needs --miou (the result to place)")
    if args.plot:
        report.import_pyplot()
    entries = leaderboard.with_result(leaderboard.published(), args.miou, args.params, _printable(args.name))
    with report.OutputSet() as outputs:
        if args.plot:
            outputs.add("--plot", args.plot)
            outputs.write(args.plot, lambda tmp: leaderboard.plot(tmp, entries))
            outputs.commit()
    print("ADE20K val leaderboard (single-scale or as published; mIoU in percent, params in millions):")
    print(leaderboard.format_table(entries), end="")
    if args.miou is not None:
        print(leaderboard.verdict(entries))
        print("note: the table's figures are ADE20K-150 on the full validation set (2,000 images); a --miou "
              "from another protocol does not rank against them")
    if args.sources:
        print()
        print(leaderboard.format_sources(entries), end="")
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
    from . import boundary, compare, research

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
    boundary.add_evaluate_options(ev)
    ev.set_defaults(func=cmd_evaluate, parser=ev)

    cmp = sub.add_parser(
        "compare", help="compare two prediction folders on the same ground truth: mIoU difference, interval, p-value",
        description="Score two runs on the same ground-truth images in one pass and test the difference: the "
                    "mIoU of each with its bootstrap interval, B - A with its paired bootstrap interval and a "
                    "two-sided paired randomization test's p-value, per-class differences, the images that "
                    "changed most.")
    compare.add_arguments(cmp)
    _add_label_format_options(cmp)
    cmp.add_argument("--convention", choices=CONVENTIONS, default=None,
                     help="how undefined classes count in the means (default: mmseg; with --dataset, the "
                          "dataset's official convention)")
    cmp.add_argument("--threads", type=_positive_int, default=None, metavar="N",
                     help="decoding threads (default: the CPUs available)")
    cmp.add_argument("-q", "--quiet", action="store_true", help="no progress bar on stderr")
    cmp.set_defaults(func=cmd_compare, parser=cmp)

    show = sub.add_parser("show", help="draw ground truth, prediction and errors side by side",
                          description="Write a colourised side-by-side of one prediction and its ground truth "
                                      "(and the photo, if given) in the ADE20K palette, errors in red.")
    show.add_argument("pred", metavar="PRED", help="predicted label PNG")
    show.add_argument("gt", metavar="GT", help="ground-truth annotation PNG")
    show.add_argument("image", metavar="IMAGE", nargs="?", help="the photo (optional)")
    show.add_argument("-o", "--output", required=True, metavar="OUT.png", help="where to write the picture")
    _add_label_format_options(show)
    show.set_defaults(func=cmd_show, parser=show)

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
    board.set_defaults(func=cmd_leaderboard, parser=board)

    bench = sub.add_parser("bench", add_help=False, help="benchmark the kernel against its peers on this machine "
                                                          "(arguments go to the benchmark; try 'bench --help')")
    bench.add_argument("bench_args", nargs=argparse.REMAINDER)
    bench.set_defaults(func=lambda args: cmd_bench(args.bench_args))

    demo = sub.add_parser("demo", help="score the bundled real ADE20K annotations against simulated predictions",
                          description="A first look without any data: scores the three real ADE20K validation "
                                      "annotations shipped with the package against simulated predictions and "
                                      "prints the per-class table, the means and the kernel in use.")
    demo.add_argument("--threads", type=_positive_int, default=None, metavar="N",
                      help="kernel threads (default: all available)")
    demo.set_defaults(func=cmd_demo, parser=demo)
    return parser


class _Terminated(BaseException):
    """SIGTERM, raised in the main thread so that a run cleans up as it does for Ctrl-C."""


@contextlib.contextmanager
def _sigterm_cleans_up():
    """Turn SIGTERM into _Terminated for the command's duration (main thread, default handler only)."""
    sigterm = getattr(signal, "SIGTERM", None)
    if (sigterm is None or threading.current_thread() is not threading.main_thread()
            or signal.getsignal(sigterm) is not signal.SIG_DFL):
        yield
        return

    def terminated(signum, frame):
        raise _Terminated

    signal.signal(sigterm, terminated)
    try:
        yield
    finally:
        signal.signal(sigterm, signal.SIG_DFL)


@contextlib.contextmanager
def _pixel_limit(value):
    """Pillow's decompression-bomb limit set to ``--max-pixels`` for the command, restored after."""
    if value is None:
        yield
        return
    Image = _pillow()
    previous = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None if value == "none" else value
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = previous


def _stdout_gone() -> None:
    # A reader that went away (``| head``): point stdout at /dev/null so that
    # the interpreter's last flush cannot fail again.
    with contextlib.suppress(OSError, ValueError, AttributeError, io.UnsupportedOperation):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def main(argv: list[str] | None = None) -> int:
    from ..io.label_files import InputError
    from ..io.report import MissingDependencyError, OutputError
    from ..metrics.shift import LabelShiftWarning

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:
        # Everything after "bench" belongs to the benchmark, options included, which
        # argparse.REMAINDER alone would not pass through when the first one starts with "-".
        return cmd_bench(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = argv
    try:
        with _sigterm_cleans_up(), _pixel_limit(getattr(args, "max_pixels", None)), warnings.catch_warnings():
            # Labels off by one class are reported as one line and a JSON "warnings" entry, not as Python's warning.
            warnings.simplefilter("ignore", LabelShiftWarning)
            status = args.func(args)
            sys.stdout.flush()  # a closed stdout fails here, not at exit
            return status
    except UsageError as e:
        getattr(args, "parser", parser).print_usage(sys.stderr)
        _error(str(e))
        return EXIT_USAGE
    except (InputError, OutputError, MissingDependencyError) as e:
        _error(str(e))
        return EXIT_BAD_INPUT
    except BrokenPipeError:
        _stdout_gone()
        return EXIT_BAD_INPUT
    except OSError as e:
        _error(f"{e.filename}: {e.strerror or e}" if e.filename else str(e))
        return EXIT_BAD_INPUT
    except MemoryError:
        _error("out of memory (fewer --threads decode fewer images at once)")
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        _error("interrupted (a run writes all of its output files or none)")
        return EXIT_INTERRUPTED
    except _Terminated:
        _error("terminated (a run writes all of its output files or none)")
        return EXIT_TERMINATED


if __name__ == "__main__":
    sys.exit(main())
