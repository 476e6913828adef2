#!/usr/bin/env bash
# memcheck.sh LIBDIR PROGRAM [ARGS...]
# Runs PROGRAM under valgrind against a copy of LIBDIR/libloramixer.so without debug sections
# (valgrind 3.19 cannot read the DWARF 5 that Swift 6.3 emits and gives up at start-up). Fails on
# any invalid access, any definite leak, a crash, or a run that never reaches valgrind's summary.
set -u
libdir=$1; shift
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
objcopy --strip-debug "$libdir/libloramixer.so" "$work/libloramixer.so" || exit 1
ln -s libloramixer.so "$work/libloramixer.so.0"   # the name a host built against the SONAME asks for
LD_LIBRARY_PATH="$work" valgrind --leak-check=full --errors-for-leak-kinds=definite --error-exitcode=99 \
    --log-file="$work/valgrind.log" "$@" > "$work/stdout" 2>&1
rc=$?
tail -n 4 "$work/stdout"
grep -E "definitely lost|ERROR SUMMARY" "$work/valgrind.log" | sed 's/^==[0-9]*== /  /'
if ! grep -q "ERROR SUMMARY" "$work/valgrind.log"; then
    echo "memcheck: FAILED: valgrind did not finish: $(head -c 400 "$work/valgrind.log")"; exit 1
fi
if [ $rc -ne 0 ]; then
    cat "$work/valgrind.log" | head -60
    echo "memcheck: FAILED: $1 exited $rc (99 = valgrind found errors)"; exit 1
fi
echo "memcheck: $(basename "$1") passed (no definite leaks, no invalid accesses)"
