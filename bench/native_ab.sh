#!/bin/bash
# Two builds of the C++ kernel side by side (issue 19): callgrind instructions a pixel (AVX2 path) and
# wall-clock Mpix/s, interleaved round by round, warm, cold (64 MiB written before every call) and
# with int64 labels, on label maps written as raw uint8 files.
#
#   mkdir -p /tmp/ab/old && git archive <rev> csrc | tar -x -C /tmp/ab/old
#   g++ -O3 -g -std=c++17 -fopenmp -I/tmp/ab/old/csrc -o /tmp/ab/np_base bench/native_profile.cpp
#   g++ -O3 -g -std=c++17 -fopenmp -Icsrc -o /tmp/ab/np_head bench/native_profile.cpp
#   (a <rev> before settle_touched existed: call invalid_counts_touched + add_class_counts_checked instead)
#   PYTHONPATH=python python bench/native_ab.py /tmp/ab      # writes the maps' .bin files there
#   bash bench/native_ab.sh /tmp/ab       (AB_SETS="real2:300:400 ..." for fewer maps)
set -euo pipefail
dir=${1:?directory with np_base, np_head and the .bin files}
cd "$dir"
sets=${AB_SETS:-"real0:512:683 real1:364:500 real2:300:400 d2:512:683 d10:512:683 d40:512:683 coh:512:683 ann:300:400 uni:512:683 crop:900:400"}
ir() {  # instructions a pixel of driver $1 on map $2 (h $3, w $4), extra arguments after
  local v=$1 d=$2 h=$3 w=$4; shift 4
  local a b
  a=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null ./np_$v ${d}_t.bin ${d}_p.bin 1 $h $w 10 1 "$@" 2>&1 | awk '/refs/ {gsub(",","",$4); print $4}')
  b=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null ./np_$v ${d}_t.bin ${d}_p.bin 1 $h $w 0 1 "$@" 2>&1 | awk '/refs/ {gsub(",","",$4); print $4}')
  python3 -c "print(round(($a - $b) / (10 * $h * $w), 3))"
}
echo "== callgrind Ir/pixel, AVX2 path (isa=1), 10 calls minus 0"
for s in $sets; do IFS=: read -r d h w <<< "$s"; echo "$d base $(ir base $d $h $w) head $(ir head $d $h $w)"; done
echo "real0 int64 base $(ir base real0 512 683 0 1) head $(ir head real0 512 683 0 1)"
echo "== wall clock, best path, Mpix/s: median (min-max) of 9 interleaved rounds"
for mode in warm:0:0 cold:64:0 int64:0:1; do IFS=: read -r label evict wide <<< "$mode"; echo "-- $label"
  for s in $sets; do IFS=: read -r d h w <<< "$s"
    [ "$label" != warm ] && [ "$d" != real0 ] && [ "$d" != real2 ] && [ "$d" != d10 ] && continue
    reps=300; [ "$label" = cold ] && reps=60
    : > r_base; : > r_head
    for _ in $(seq 9); do for v in base head; do
      ./np_$v ${d}_t.bin ${d}_p.bin 1 $h $w $reps -1 $evict $wide | cut -d' ' -f3 >> r_$v; done; done
    python3 - "$d" <<'PY'
import statistics as s, sys
b, h = ([float(x) for x in open(f)] for f in ("r_base", "r_head"))
fmt = lambda r: f"{s.median(r):,.0f} ({min(r):,.0f}-{max(r):,.0f})"
print(sys.argv[1], "base", fmt(b), "head", fmt(h), "ratio", round(s.median(y / x for x, y in zip(b, h)), 2))
PY
  done
done
for s in real0:512:683 uni:512:683; do IFS=: read -r d h w <<< "$s"
  echo "$d checksums: base $(./np_base ${d}_t.bin ${d}_p.bin 1 $h $w 2 -1 | cut -d' ' -f1,2), head $(./np_head ${d}_t.bin ${d}_p.bin 1 $h $w 2 -1 | cut -d' ' -f1,2)"
done
