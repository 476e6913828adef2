#!/bin/sh
# Runtime footprint of libloramixer.so builds: installed size and load time, measured together.
#
#   bench/footprint.sh [RUNS] LABEL=LIB [LABEL=LIB ...]
#   e.g. bench/footprint.sh 30 before=.build-before/.build/release/libloramixer.so \
#                              after=.build/release/libloramixer.so
#
# Installed size: the library plus every Swift runtime library it needs, i.e. each dependency
# `ldd` resolves into the toolchain's runtime folder (the folder of libswiftCore.so); system
# libraries (libc, libstdc++, libm ...) are not counted. Sizes are apparent file sizes (du -bL).
# Load time: a tiny C program (bench/dlopen_time.c) dlopen()s the library (RTLD_NOW) and calls
# lmx_version(); it prints the microseconds from just before dlopen to just after that call.
# Each library is timed RUNS times (default 30), the libraries interleaved (A B A B ...), each
# run a fresh process (warm page cache); the median and min-max are reported.
set -eu
RUNS=30
case "${1:-}" in [0-9]*) RUNS=$1; shift ;; esac
[ $# -ge 1 ] || { sed -n '2,15p' "$0"; exit 64; }
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
${CC:-cc} -O2 -o "$WORK/dlopen_time" "$HERE/dlopen_time.c" -ldl

i=0
for spec in "$@"; do
    i=$((i + 1))
    label=${spec%%=*}; lib=${spec#*=}
    [ -f "$lib" ] || { echo "footprint.sh: $lib: no such file" >&2; exit 1; }
    echo "$label" > "$WORK/label.$i"; echo "$lib" > "$WORK/lib.$i"
    runtime=$(ldd "$lib" | awk '/libswiftCore\.so/ { print $3 }')
    runtime_dir=$(dirname "$(readlink -f "$runtime")")
    ldd "$lib" | awk '$2 == "=>" && $3 ~ /^\// { print $3 }' | while read -r dep; do
        case "$(dirname "$(readlink -f "$dep")")" in "$runtime_dir") echo "$dep" ;; esac
    done > "$WORK/deps.$i"
    : > "$WORK/times.$i"
done
n=$i

r=0
while [ $r -lt "$RUNS" ]; do
    i=1
    while [ $i -le "$n" ]; do
        "$WORK/dlopen_time" "$(cat "$WORK/lib.$i")" >> "$WORK/times.$i"
        i=$((i + 1))
    done
    r=$((r + 1))
done

printf '%-10s %12s %8s %s\n' "build" "installed" "libs" "load time (dlopen + lmx_version), median (min-max) of $RUNS"
i=1
while [ $i -le "$n" ]; do
    lib=$(cat "$WORK/lib.$i")
    bytes=$(cat "$WORK/lib.$i" "$WORK/deps.$i" | xargs du -bL | awk '{ s += $1 } END { print s }')
    count=$(($(wc -l < "$WORK/deps.$i") + 1))
    stats=$(sort -n "$WORK/times.$i" | awk '{ v[NR] = $1 } END {
        m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        printf "%.1f ms (%.1f-%.1f)", m / 1000, v[1] / 1000, v[NR] / 1000 }')
    printf '%-10s %9.1f MB %8s %s\n' "$(cat "$WORK/label.$i")" "$(echo "$bytes" | awk '{ print $1 / 1e6 }')" "$count" "$stats"
    if [ "${VERBOSE:-0}" = 1 ]; then
        cat "$WORK/lib.$i" "$WORK/deps.$i" | xargs du -bL | sort -rn | awk '{ printf "             %8.2f MB  %s\n", $1 / 1e6, $2 }'
    fi
    i=$((i + 1))
done
