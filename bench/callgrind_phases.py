"""Split a callgrind profile of bench/native_profile.cpp into the kernel's phases (issue 19).

    valgrind --tool=callgrind --compress-strings=no --compress-pos=no --callgrind-out-file=OUT \
        /tmp/native_profile T.bin P.bin maps h w reps 1
    python bench/callgrind_phases.py OUT_reps0 OUT_repsR R pixels changes

Self cost (Ir) per source line, attributed by file and line range of csrc/ade20k_metrics/confusion.hpp;
the reps=0 profile (reading the files, start-up) is subtracted.  Phases: the change mask (change_mask.hpp
and the SIMD intrinsics headers), extraction of change positions (the block loop of count_contiguous),
run counting (add_runs, ThreadTables::add_run, mark_touched, the label coders), scatter (noisy blocks),
merge (count_pairs' set-up and flush, add_class_counts_checked, clear_touched), other.

The line ranges in phase() are those of confusion.hpp at 8e8b754, the kernel of RESULTS' "before the
change" figures; the file has changed since (session 5), so for a later kernel set them anew (or use
`callgrind_annotate --auto=yes` per source line; the newer figures in bench/RESULTS.md are totals).
"""
import collections
import sys


def phase(fl: str, line: int) -> str:
    if "change_mask.hpp" in fl or "intrin.h" in fl:
        return "change mask"
    if fl.endswith("confusion.hpp"):
        if 98 <= line <= 101 or 144 <= line <= 147 or 309 <= line <= 378 or 428 <= line <= 437:
            return "run counting"
        if 438 <= line <= 474:
            return "extraction of positions"
        if 475 <= line <= 484:
            return "row tail"
        if 148 <= line <= 168 or 380 <= line <= 410:
            return "scatter"
        return "merge and set-up"
    if "memset" in fl or "memcpy" in fl:
        return "merge and set-up"
    return "other"


def costs(path: str) -> collections.Counter:
    out = collections.Counter()
    fl = fi = ""
    skip = False
    with open(path) as f:
        for raw in f:
            s = raw.strip()
            if s.startswith("fl="):
                fl = fi = s[3:]
            elif s.startswith(("fi=", "fe=")):
                fi = s[3:]
            elif s.startswith("fn="):
                fi = fl
            elif s.startswith("calls="):
                skip = True  # the next cost line is the call's inclusive cost
            elif s and s[0].isdigit():
                if skip:
                    skip = False
                    continue
                parts = s.split()
                if len(parts) >= 2:
                    out[phase(fi, int(parts[0]))] += int(parts[1])
    return out


def main() -> int:
    base, prof, reps, pixels, changes = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    a, b = costs(base), costs(prof)
    total = 0
    rows = []
    for k in ("change mask", "extraction of positions", "run counting", "scatter", "row tail", "merge and set-up", "other"):
        d = (b[k] - a[k]) / reps
        total += d
        rows.append((k, d))
    for k, d in rows:
        print(f"{k:26s} {d / pixels:6.3f} Ir/pixel  {d / changes:6.1f} Ir/change  {100 * d / total:5.1f}%")
    print(f"{'total':26s} {total / pixels:6.3f} Ir/pixel  {total / changes:6.1f} Ir/change")
    return 0


if __name__ == "__main__":
    sys.exit(main())
