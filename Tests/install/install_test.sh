#!/usr/bin/env bash
# install_test.sh — `make install-test`: what a C developer does after `make install`, in a
# temporary prefix, with nothing else set:
#   1. make install PREFIX=$(mktemp -d): files, SONAME, RUNPATH, symbol versions; ldd resolves the
#      library, lmx and a host entirely inside the prefix (Swift runtime included).
#   2. Tests/install/host.c built with `cc ... $(pkg-config --cflags --libs loramixer)` only
#      (PKG_CONFIG_PATH=PREFIX/lib/pkgconfig), run under `env -i`: "12+30=" -> "12+30=42".
#   3. The installed lmx: `lmx inspect models/tiny-llama` under `env -i`.
#   4. The README's valgrind command on the host: exit 0, 0 errors; and on the host told to leak:
#      exit 99 (the suppressions hide nothing of ours).
#   5. The Python package, copied out of the repository, loads PREFIX/lib/libloramixer.so.0 (pkg-config).
#   6. make uninstall leaves the prefix empty; with DESTDIR and a file of someone else's in the
#      tree, uninstall removes exactly the manifest's files and keeps the other file.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
make=${MAKE:-make}
version=$(cat VERSION)
work=$(mktemp -d)
prefix=$(mktemp -d)
trap 'rm -rf "$work" "$prefix"' EXIT
fail() { echo "install_test: FAIL: $*"; exit 1; }
step() { echo "---- install_test: $*"; }

step "make install PREFIX=$prefix"
$make --no-print-directory install PREFIX="$prefix" | tail -n 1
for f in lib/libloramixer.so.$version lib/libloramixer.so.0 lib/libloramixer.so bin/lmx include/loramixer.h \
         include/loramixer_common.h include/loramixer_plugin.h lib/pkgconfig/loramixer.pc \
         share/loramixer/loramixer.supp share/loramixer/install-manifest.txt lib/loramixer/swift/libswiftCore.so; do
    [ -e "$prefix/$f" ] || fail "$prefix/$f was not installed"
done
[ "$(readlink "$prefix/lib/libloramixer.so")" = libloramixer.so.0 ] || fail "libloramixer.so does not link to libloramixer.so.0"
[ "$(readlink "$prefix/lib/libloramixer.so.0")" = "libloramixer.so.$version" ] || fail "libloramixer.so.0 does not link to libloramixer.so.$version"
readelf -d "$prefix/lib/libloramixer.so.$version" | grep -q 'Library runpath: \[\$ORIGIN/loramixer/swift\]' \
    || fail "the installed library's RUNPATH is not \$ORIGIN/loramixer/swift"
readelf -d "$prefix/bin/lmx" | grep -q 'Library runpath: \[\$ORIGIN/../lib/loramixer/swift\]' \
    || fail "the installed lmx's RUNPATH is not \$ORIGIN/../lib/loramixer/swift"
python3 tools/abi/check_version.py --library "$prefix/lib/libloramixer.so.$version"
if readelf -S "$prefix/lib/libloramixer.so.$version" | grep -q '\.debug_info'; then fail "the installed library has DWARF"; fi

# Every dependency resolves, and everything that is not the C/C++ system runtime comes from the prefix.
check_ldd() {
    local out; out=$(env -i ldd "$1")
    if grep -q 'not found' <<<"$out"; then fail "ldd $1: $(grep 'not found' <<<"$out" | tr -s ' \t' ' ')"; fi
    local outside; outside=$(awk '$2 == "=>" { print $3 }' <<<"$out" | grep -v "^$prefix/" \
        | grep -Ev '^/(usr/)?lib(64)?/(x86_64-linux-gnu/)?(libc|libm|libstdc\+\+|libgcc_s|libpthread|libdl|librt|ld-linux[^/]*)\.so' || true)
    [ -z "$outside" ] || fail "ldd $1 resolves outside $prefix: $outside"
    echo "ok   ldd $(basename "$1"): $(grep -c "=> $prefix/" <<<"$out") libraries from the prefix, the rest libc/libm/libstdc++/libgcc_s"
}
check_ldd "$prefix/lib/libloramixer.so.$version"
check_ldd "$prefix/bin/lmx"

step "a host built with pkg-config only"
cp Tests/install/host.c "$work/host.c"
(cd "$work" && env -i PATH="$PATH" PKG_CONFIG_PATH="$prefix/lib/pkgconfig" \
    sh -c 'set -x; cc -std=c11 -Wall -Wextra -Werror host.c -o host $(pkg-config --cflags --libs loramixer)')
check_ldd "$work/host"
answer=$(env -i "$work/host" "$root/models" "12+30=") || fail "host exited $?"
echo "$answer"
[ "$answer" = "12+30=42" ] || fail "host printed '$answer', expected '12+30=42'"
[ "$(env -i PKG_CONFIG_PATH="$prefix/lib/pkgconfig" pkg-config --modversion loramixer)" = "$version" ] \
    || fail "pkg-config --modversion loramixer is not $version"

step "the installed lmx"
out=$(env -i "$prefix/bin/lmx" inspect models/tiny-llama) || fail "lmx inspect exited $?"
head -n 4 <<<"$out"
grep -q 'architecture: *LlamaForCausalLM' <<<"$out" || fail "lmx inspect models/tiny-llama did not print the architecture"

step "valgrind, as the README says"
supp=$(env -i PKG_CONFIG_PATH="$prefix/lib/pkgconfig" pkg-config --variable=suppressions loramixer)
[ -f "$supp" ] || fail "pkg-config --variable=suppressions loramixer is '$supp', not a file"
vg() {  # the README's command, verbatim apart from the host's arguments
    (cd "$work" && env -i PATH="$PATH" PKG_CONFIG_PATH="$prefix/lib/pkgconfig" sh -c \
        'valgrind --leak-check=full --error-exitcode=99 --suppressions="$(pkg-config --variable=suppressions loramixer)" "$@"' \
        vg "$@" > "$work/valgrind.out" 2>&1)
}
set +e; vg ./host "$root/models" "12+30="; rc=$?; set -e
grep -E '^12\+30=|definitely lost:|possibly lost:|ERROR SUMMARY' "$work/valgrind.out" | sed 's/^==[0-9]*== */  /'
grep -q 'ERROR SUMMARY: 0 errors' "$work/valgrind.out" && [ $rc -eq 0 ] \
    || { tail -n 60 "$work/valgrind.out"; fail "valgrind on the host: exit status $rc, not 0 errors"; }
set +e; vg ./host "$root/models" "12+30=" --leak; rc=$?; set -e
[ $rc -eq 99 ] || { tail -n 40 "$work/valgrind.out"; fail "valgrind on the leaking host exited $rc, expected 99"; }
echo "ok   the same command on the host told to leak: exit 99 ($(grep -o 'ERROR SUMMARY: [0-9]* errors' "$work/valgrind.out"))"

step "the Python package, outside the repository, finds the installed library through pkg-config"
mkdir -p "$work/site" && cp -r python/loramixer "$work/site/loramixer" && rm -rf "$work/site/loramixer/__pycache__"
found=$(cd "$work" && env -i PATH="$PATH" PYTHONPATH="$work/site" PKG_CONFIG_PATH="$prefix/lib/pkgconfig" \
    python3 -c 'import loramixer as l; print(l.library_path(), l.version())') || fail "python could not load the installed library"
echo "$found"
[ "$found" = "$prefix/lib/libloramixer.so.0 $version" ] || fail "python loaded '$found', expected $prefix/lib/libloramixer.so.0 $version"

step "make uninstall PREFIX=$prefix"
$make --no-print-directory uninstall PREFIX="$prefix"
left=$(find "$prefix" -mindepth 1)
[ -z "$left" ] || fail "make uninstall left: $left"
echo "ok   the prefix is empty"

step "make install DESTDIR=$work/stage PREFIX=/opt/lmx; a file that is not ours; make uninstall"
$make --no-print-directory install DESTDIR="$work/stage" PREFIX=/opt/lmx | tail -n 1
grep -q '^prefix=/opt/lmx$' "$work/stage/opt/lmx/lib/pkgconfig/loramixer.pc" || fail "loramixer.pc under DESTDIR does not say prefix=/opt/lmx"
echo mine > "$work/stage/opt/lmx/lib/not-loramixer.txt"
$make --no-print-directory uninstall DESTDIR="$work/stage" PREFIX=/opt/lmx
left=$(cd "$work/stage" && find . -mindepth 1 | sort | tr '\n' ' ')
[ "$left" = "./opt ./opt/lmx ./opt/lmx/lib ./opt/lmx/lib/not-loramixer.txt " ] \
    || fail "after uninstall with DESTDIR, expected only ./opt/lmx/lib/not-loramixer.txt and its folders, found: $left"
echo "ok   only the file that is not ours (and its folders) is left"
echo "install_test: passed (install, pkg-config host, lmx, valgrind, uninstall)"
