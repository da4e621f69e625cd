"""Peak memory the kernel adds while histogramming a large input: python bench/bench_memory.py [--gib 1].

Builds 2 x (GiB / 2) of coherent uint8 labels first, then reads the process's peak resident set size
(getrusage ru_maxrss, Linux: KiB) before and after one ConfusionMatrix.update over all of it, with the
default threads and with one.  The growth is what the kernel allocated on top of its inputs.  Never part
of the test run.
"""
from __future__ import annotations

import argparse
import resource

import numpy as np

import ade20k_metrics as am


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gib", type=float, default=1.0, help="GiB of labels, both arrays together")
    args = parser.parse_args()
    n = int(args.gib * 2**30 / 2)
    # Coherent maps: runs of one class, made without temporaries of the full size.
    target = np.empty(n, np.uint8)
    rng = np.random.default_rng(0)
    runs = rng.integers(0, 150, n // 4096 + 1).astype(np.uint8)
    for start in range(0, n, 1 << 24):
        stop = min(n, start + (1 << 24))
        target[start:stop] = np.repeat(runs[start // 4096: (stop + 4095) // 4096], 4096)[: stop - start]
    pred = target.copy()
    pred[::7] = 3
    expected_total = n
    for threads in (None, 1):
        before = peak_rss_mib()
        cm = am.ConfusionMatrix(150, n_threads=threads).update(pred, target)
        after = peak_rss_mib()
        assert cm.total == expected_total
        print(f"n_threads={threads}: {2 * n / 2**30:.2f} GiB of labels, peak RSS {before:,.1f} -> {after:,.1f} MiB "
              f"(growth {after - before:.1f} MiB)")


if __name__ == "__main__":
    main()
