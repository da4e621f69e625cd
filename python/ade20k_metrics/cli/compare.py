"""``ade20k-metrics compare PRED_A PRED_B GT_DIR``: is B better than A on the same images, and by how much?

Both prediction folders are read in one pass over the ground truth (each
ground-truth file decoded once).  Reported: the dataset mIoU of each run with
its bootstrap interval, the difference B - A with its paired percentile
bootstrap interval and the two-sided paired randomization test's p-value
(ade20k_metrics.analysis.significance says why that test), the per-class
differences with paired intervals, and the images whose own mIoU changed
most.  As text on stdout, and as JSON, Markdown, LaTeX and a figure on request.
"""
from __future__ import annotations

import argparse
import math
import sys

import numpy as np

from ..io.label_files import InputError

OUTPUTS = ("json", "markdown", "latex", "per_image", "plot")


def add_arguments(p: argparse.ArgumentParser) -> None:
    from .research import add_interval_options, resamples

    p.add_argument("pred_a", metavar="PRED_A", help="folder of the baseline's predicted label PNGs (A)")
    p.add_argument("pred_b", metavar="PRED_B", help="folder of the other run's predicted label PNGs (B)")
    p.add_argument("gt_dir", metavar="GT_DIR", help="folder of ground-truth annotation PNGs")
    p.add_argument("--name-a", default="A", help="the baseline's name in reports (default: A)")
    p.add_argument("--name-b", default="B", help="the other run's name in reports (default: B)")
    add_interval_options(p, ci_default=0.95)
    p.add_argument("--permutations", type=resamples, default=10_000, metavar="N",
                   help="permutations of the paired randomization test (default: 10000; p >= 1/(N+1))")
    p.add_argument("--top", type=int, default=10, metavar="N",
                   help="classes and images listed as changed most (default: 10)")
    p.add_argument("--json", metavar="FILE", help="write everything as JSON (fractions)")
    p.add_argument("--markdown", metavar="FILE", help="write the comparison as Markdown tables")
    p.add_argument("--latex", metavar="FILE.tex", help="write the comparison as LaTeX tables (booktabs)")
    p.add_argument("--per-image", metavar="FILE.csv",
                   help="write one row per image: image, pixels, miou_a, miou_b, delta")
    p.add_argument("--plot", metavar="FILE.png", help="draw the per-class differences (needs matplotlib)")
    p.add_argument("--allow-missing", action="store_true",
                   help="compare on the images all three folders hold, warning about the others "
                        "(default: an error)")


def _files(folder: str, gt_dir: str, label_format) -> tuple[dict, dict]:
    """(predictions by key, ground truth by key) of one prediction folder against GT_DIR.

    Without a dataset: every label PNG of each folder.  With ``--dataset``: the
    dataset's own file layout and naming (DatasetFormat.pair_folders); the
    ground-truth values are (ground truth, instances) paths.
    """
    from ..io.dataset_files import DatasetFormat
    from ..io.label_files import find_label_maps

    if not isinstance(label_format, DatasetFormat):
        return find_label_maps(folder), {k: (p, None) for k, p in find_label_maps(gt_dir).items()}
    pairing = label_format.pair_folders(folder, gt_dir)
    preds = {p.key: p.pred for p in pairing.pairs}
    preds.update({k: None for k in pairing.missing_gt})  # a prediction without ground truth: its key only
    gts = {p.key: (p.gt, getattr(p, "instances", None)) for p in pairing.pairs}
    gts.update({k: None for k in pairing.missing_pred})
    return preds, gts


def triples(pred_a: str, pred_b: str, gt_dir: str, label_format=None, *, allow_missing: bool = False,
            warn=None):
    """The files of the three folders by key, for the keys in all three.

    A key missing from any folder is an InputError listing what is not in all
    three, or with ``allow_missing`` a warning (``warn(message)``) and the key
    left out, as ``evaluate --allow-missing`` does.
    """
    from ..io.per_image import Triple

    a, gt = _files(pred_a, gt_dir, label_format)
    b, gt_b = _files(pred_b, gt_dir, label_format)
    # The same GT_DIR both times; a dataset's pairing names a ground truth's files only where it paired them.
    gt_files = {k: v for found in (gt_b, gt) for k, v in found.items() if v is not None}
    problems = []
    for what, keys in ((f"in {gt_dir} but not in {pred_a}", gt.keys() - a.keys()),
                       (f"in {gt_dir} but not in {pred_b}", gt.keys() - b.keys()),
                       (f"in {pred_a} but not in {gt_dir}", a.keys() - gt.keys()),
                       (f"in {pred_b} but not in {gt_dir}", b.keys() - gt.keys())):
        if keys:
            shown = sorted(keys)
            problems.append(f"{len(shown)} file(s) {what}: {', '.join(shown[:5])}"
                            + (f", ... and {len(shown) - 5} more" if len(shown) > 5 else ""))
    if problems and not allow_missing:
        raise InputError("A and B must cover the same ground-truth files; " + "; ".join(problems)
                         + "; pass --allow-missing to compare on the images all three folders hold")
    keys = sorted(k for k in gt_files if a.get(k) is not None and b.get(k) is not None)
    if problems and warn is not None:
        for line in problems:
            warn(line + " (skipped: --allow-missing)")
    if not gt:
        raise InputError(f"no ground-truth label maps found in {gt_dir}")
    if not keys:
        raise InputError(f"no image is in all three folders ({pred_a}, {pred_b}, {gt_dir})")
    return [Triple(k, a[k], b[k], gt_files[k][0], gt_files[k][1]) for k in keys]


def _num(x):
    x = float(x)
    return None if not math.isfinite(x) else x


def comparison(a, b, args: argparse.Namespace, names: tuple[str, ...]) -> dict:
    """The JSON document: top level miou_a, miou_b, delta (b - a), delta_ci, p_value, and the details."""
    from ..analysis.significance import column_intervals, paired_resampling, percentile_interval

    b.check_same_images(a)
    # One set of paired draws gives the mIoU interval and the per-class ones; then the swaps give p.
    paired = paired_resampling(a._float_counts(), b._float_counts(), args.convention, args.bootstrap,
                               args.permutations, np.random.default_rng(args.seed), a._left_out(args.convention))
    delta_low, delta_high = percentile_interval(paired.delta_samples, args.ci)
    low, high = column_intervals(paired.class_samples, args.ci)
    ci_a = a.bootstrap_miou(args.bootstrap, confidence=args.ci, convention=args.convention, seed=args.seed)
    ci_b = b.bootstrap_miou(args.bootstrap, confidence=args.ci, convention=args.convention, seed=args.seed)
    iou_a = a.compute(args.convention).iou
    iou_b = b.compute(args.convention).iou
    per_class = []
    for c in range(a.num_classes):
        d = paired.class_delta[c]
        per_class.append({"id": c, "name": names[c], "iou_a": _num(iou_a[c]), "iou_b": _num(iou_b[c]),
                          "delta": _num(d), "delta_ci": [_num(low[c]), _num(high[c])]})
    per_class.sort(key=lambda r: (r["delta"] is None, -abs(r["delta"] or 0.0), r["id"]))
    img_a, img_b = a.image_miou(), b.image_miou()
    delta_img = img_b - img_a
    order = [i for i in np.argsort(-np.abs(np.nan_to_num(delta_img, nan=0.0)), kind="stable")
             if np.isfinite(delta_img[i])]
    changed = [{"image": str(a.names[i]), "miou_a": _num(img_a[i]), "miou_b": _num(img_b[i]),
                "delta": _num(delta_img[i])} for i in order[: max(args.top, 0)]]
    improved = int(np.sum(delta_img > 0))
    worse = int(np.sum(delta_img < 0))
    return {
        "format": "ade20k-metrics compare",
        "version": 1,
        "name_a": args.name_a,
        "name_b": args.name_b,
        "miou_a": _num(ci_a.estimate),
        "miou_b": _num(ci_b.estimate),
        "delta": _num(paired.delta),
        "delta_ci": [_num(delta_low), _num(delta_high)],
        "p_value": _num(paired.p_value),
        "p_value_method": "two-sided paired randomization test over images (each image's two predictions "
                          "swapped with probability 1/2, dataset mIoU recomputed; p = (1 + #|d*| >= |d|) / (1 + N))",
        "ci_method": "paired percentile bootstrap over images (the same resampled images for A and B)",
        "miou_a_ci": [_num(ci_a.low), _num(ci_a.high)],
        "miou_b_ci": [_num(ci_b.low), _num(ci_b.high)],
        "confidence": args.ci,
        "n_resamples": args.bootstrap,
        "n_permutations": args.permutations,
        "seed": args.seed,
        "convention": args.convention,
        "images": len(a),
        "images_better": improved,
        "images_worse": worse,
        "per_class": per_class,
        "images_changed_most": changed,
    }


def _pct(x, signed=False) -> str:
    if x is None:
        return "nan"
    return f"{100 * x:+.2f}" if signed else f"{100 * x:.2f}"


def _ci(pair, signed=False) -> str:
    lo, hi = pair
    if lo is None or hi is None:
        return ""
    return f"[{_pct(lo, signed)}, {_pct(hi, signed)}]"


def _p(p) -> str:
    if p is None:
        return "nan"
    return f"{p:.4f}" if p >= 1e-4 else f"{p:.1e}"


def _label(letter: str, name: str) -> str:
    return letter if name == letter else f"{letter}: {name}"


def text_report(doc: dict, top: int) -> str:
    conf = f"{100 * doc['confidence']:g}%"
    width = max(len(doc["name_a"]), len(doc["name_b"]), len("B - A")) + 4
    lines = [f"compare: {doc['images']} images, {doc['convention']} convention, percent; {conf} intervals from "
             f"{doc['n_resamples']} paired bootstrap resamples of images (seed {doc['seed']})",
             f"{'':<{width}} {'mIoU':>7}  {conf} CI",
             f"{_label('A', doc['name_a']):<{width}} {_pct(doc['miou_a']):>7}  {_ci(doc['miou_a_ci'])}",
             f"{_label('B', doc['name_b']):<{width}} {_pct(doc['miou_b']):>7}  {_ci(doc['miou_b_ci'])}",
             f"{'B - A':<{width}} {_pct(doc['delta'], True):>7}  {_ci(doc['delta_ci'], True)}   "
             f"p = {_p(doc['p_value'])} (two-sided paired randomization test, {doc['n_permutations']} permutations)",
             f"images: B better on {doc['images_better']}, worse on {doc['images_worse']}, "
             f"the same on {doc['images'] - doc['images_better'] - doc['images_worse']} (own mIoU)"]
    missed = intervals_missing_estimate(doc)
    if missed:
        from .research import OUTSIDE_NOTE

        lines.append(f"{OUTSIDE_NOTE} ({', '.join(missed)})")
    lines.append("")
    classes = [c for c in doc["per_class"] if c["delta"] is not None][:top]
    if classes:
        w = max(len("class"), *(len(c["name"]) for c in classes))
        lines.append(f"classes that changed most (IoU, B - A):")
        lines.append(f"{'id':>4}  {'class':<{w}}  {'A':>6}  {'B':>6}  {'B - A':>7}  {conf} CI")
        for c in classes:
            lines.append(f"{c['id']:>4}  {c['name']:<{w}}  {_pct(c['iou_a']):>6}  {_pct(c['iou_b']):>6}  "
                         f"{_pct(c['delta'], True):>7}  {_ci(c['delta_ci'], True)}")
        lines.append("")
    if doc["images_changed_most"]:
        w = max(len("image"), *(len(r["image"]) for r in doc["images_changed_most"]))
        lines.append("images whose own mIoU changed most:")
        lines.append(f"{'image':<{w}}  {'A':>6}  {'B':>6}  {'B - A':>7}")
        for r in doc["images_changed_most"]:
            lines.append(f"{r['image']:<{w}}  {_pct(r['miou_a']):>6}  {_pct(r['miou_b']):>6}  {_pct(r['delta'], True):>7}")
    return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    return str(text).replace("|", "\\|")


def intervals_missing_estimate(doc: dict) -> list[str]:
    """Which of A, B and B - A lie outside their own interval (the percentile bootstrap's small-sample bias)."""
    from .research import _inside

    out = []
    for label, estimate, pair in (("A", doc["miou_a"], doc["miou_a_ci"]), ("B", doc["miou_b"], doc["miou_b_ci"]),
                                  ("B - A", doc["delta"], doc["delta_ci"])):
        if None not in pair and estimate is not None and _inside(float(estimate), float(pair[0]), float(pair[1])) is False:
            out.append(label)
    return out


def _outside_lines(doc: dict) -> list[str]:
    from .research import OUTSIDE_NOTE

    missed = intervals_missing_estimate(doc)
    return ["", f"{OUTSIDE_NOTE[0].upper()}{OUTSIDE_NOTE[1:]} ({', '.join(missed)})."] if missed else []


def markdown_report(doc: dict, top: int) -> str:
    conf = f"{100 * doc['confidence']:g}%"
    out = [f"## {_md(doc['name_b'])} against {_md(doc['name_a'])}", "",
           f"{doc['images']} images, {doc['convention']} convention, percent. Intervals: paired percentile "
           f"bootstrap over images ({doc['n_resamples']} resamples, seed {doc['seed']}); p: two-sided paired "
           f"randomization test over images ({doc['n_permutations']} permutations).", "",
           f"| run | mIoU | {conf} CI |", "| --- | ---: | --- |",
           f"| A: {_md(doc['name_a'])} | {_pct(doc['miou_a'])} | {_ci(doc['miou_a_ci'])} |",
           f"| B: {_md(doc['name_b'])} | {_pct(doc['miou_b'])} | {_ci(doc['miou_b_ci'])} |",
           f"| B - A | {_pct(doc['delta'], True)} | {_ci(doc['delta_ci'], True)} |", "",
           f"p = {_p(doc['p_value'])}; B better on {doc['images_better']} images, worse on {doc['images_worse']}.",
           *_outside_lines(doc), "", "### Classes that changed most", "",
           f"| id | class | IoU A | IoU B | B - A | {conf} CI |", "| ---: | --- | ---: | ---: | ---: | --- |"]
    for c in [c for c in doc["per_class"] if c["delta"] is not None][:top]:
        out.append(f"| {c['id']} | {_md(c['name'])} | {_pct(c['iou_a'])} | {_pct(c['iou_b'])} | "
                   f"{_pct(c['delta'], True)} | {_ci(c['delta_ci'], True)} |")
    out += ["", "### Images whose own mIoU changed most", "", "| image | mIoU A | mIoU B | B - A |",
            "| --- | ---: | ---: | ---: |"]
    for r in doc["images_changed_most"]:
        out.append(f"| {_md(r['image'])} | {_pct(r['miou_a'])} | {_pct(r['miou_b'])} | {_pct(r['delta'], True)} |")
    return "\n".join(out) + "\n"


def per_image_text(a, b) -> str:
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["image", "pixels", "miou_a", "miou_b", "delta"])
    ma, mb, px = a.image_miou(), b.image_miou(), a.pixels()

    def cell(x):
        return "" if not math.isfinite(x) else repr(float(x))

    for i, name in enumerate(a.names):
        writer.writerow([str(name), int(px[i]), cell(ma[i]), cell(mb[i]), cell(mb[i] - ma[i])])
    return out.getvalue()


def run(args: argparse.Namespace, label_format, threads: int, progress) -> dict:
    """Score both runs and build the comparison; the caller prints and writes it."""
    from ..io.dataset_files import DatasetFormat
    from ..io.per_image import compare_folders
    from ..io.label_files import label_shift_warnings
    from ..io.report import ClassInfo, printable

    warn = None if args.quiet else (lambda line: print(f"ade20k-metrics: warning: {printable(line)}", file=sys.stderr))
    items = triples(args.pred_a, args.pred_b, args.gt_dir, label_format, allow_missing=args.allow_missing,
                    warn=warn)
    bar = progress(len(items))
    try:
        a, b = compare_folders(items, label_format, threads=threads, on_pair=bar.update)
    finally:
        bar.close()
    if isinstance(label_format, DatasetFormat):
        names = label_format.class_info().names
    else:
        names = ClassInfo.for_num_classes(label_format.num_classes).names
    doc = comparison(a, b, args, names)
    # Labels off by one class in either run: one line each, named by run (the caller prints them).
    doc["warnings"] = [f"{letter} ({folder}): {line}" for letter, folder, stats in
                       (("A", printable(args.pred_a), a), ("B", printable(args.pred_b), b))
                       for line in label_shift_warnings(stats.matrix, label_format)]
    doc["_stats"] = (a, b)
    return doc


def reserve(args: argparse.Namespace, outputs) -> None:
    """Every output asked for, reserved in an io.report.OutputSet before any work (an unwritable one fails now)."""
    for option in OUTPUTS:
        path = getattr(args, option)
        if path is not None:
            outputs.add("--" + option.replace("_", "-"), path)


def finish(args: argparse.Namespace, doc: dict, env: dict, outputs) -> int:
    """Print the comparison, then write every output asked for, all or none (``outputs``: an OutputSet)."""
    from ..io import report
    from ..io.latex import comparison_table

    a, b = doc.pop("_stats")
    doc["environment"] = env
    print(text_report(doc, args.top), end="")
    texts = []
    if args.json:
        texts.append((args.json, json_text(doc)))
    if args.markdown:
        texts.append((args.markdown, markdown_report(doc, args.top)))
    if args.latex:
        texts.append((args.latex, comparison_table(doc, top=args.top)))
    if args.per_image:
        texts.append((args.per_image, per_image_text(a, b)))
    for path, text in texts:
        outputs.write(path, lambda temporary, text=text: _write_text(temporary, text))
    if args.plot:
        from ..io.figures import comparison_figure

        comparison_figure(args.plot, doc, outputs=outputs)
    outputs.commit()
    return 0


def json_text(doc: dict) -> str:
    import json

    from ..io.report import _json_clean

    return json.dumps(_json_clean(doc), indent=1, allow_nan=False) + "\n"


def _write_text(path, text: str) -> None:
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(text)
