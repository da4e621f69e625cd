"""Benchmark the kernel against its peers: python bench/run.py [--help].

Same as `ade20k-metrics bench`; the code lives in ade20k_metrics/cli/benchmark.py so
the installed command can run it.  Never part of the test run.
"""
import sys

from ade20k_metrics.cli.benchmark import main

if __name__ == "__main__":
    sys.exit(main())
