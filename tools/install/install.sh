#!/usr/bin/env bash
# install.sh ROOT BUILD_DIR PREFIX [DESTDIR] — what `make install` runs (see README, "Installing").
#
# Installs under DESTDIR+PREFIX:
#   lib/libloramixer.so.X.Y.Z (+ libloramixer.so.X, libloramixer.so symlinks)   RUNPATH $ORIGIN/loramixer/swift
#   lib/loramixer/swift/*.so      the Swift runtime libraries the library and lmx load (ldd, from the toolchain)
#   bin/lmx                                                                     RUNPATH $ORIGIN/../lib/loramixer/swift
#   include/loramixer.h, loramixer_common.h, loramixer_plugin.h
#   lib/pkgconfig/loramixer.pc    from tools/install/loramixer.pc.in
#   share/loramixer/loramixer.supp  valgrind suppressions for hosts
#   share/loramixer/install-manifest.txt  every file, link and folder this created (for uninstall.sh)
# The library and lmx are installed without DWARF sections (objcopy --strip-debug, symbols kept):
# valgrind 3.19 cannot read the DWARF 5 that Swift 6.3 writes. patchelf (Debian: patchelf) sets
# the run paths, replacing the build's, which point into the toolchain and the build folder.
set -euo pipefail
root=$1 build=$2 prefix=$3 destdir=${4:-}
case $prefix in /*) ;; *) echo "install: PREFIX must be an absolute path (got '$prefix')" >&2; exit 2 ;; esac
dest=$destdir$prefix
version=$(tr -d ' \n' < "$root/VERSION")
major=${version%%.*}
lib=$build/libloramixer.so
for f in "$lib" "$build/lmx"; do
    [ -f "$f" ] || { echo "install: $f is missing: run \`make release\` first" >&2; exit 1; }
done
command -v patchelf >/dev/null || { echo "install: patchelf is needed (Debian: apt-get install patchelf)" >&2; exit 1; }

manifest_rel=share/loramixer/install-manifest.txt
entries=()
# Folders created by an earlier install into this prefix stay ours.
if [ -f "$dest/$manifest_rel" ]; then
    while IFS=$'\t' read -r kind path; do
        [ "$kind" = dir ] && entries+=("dir	$path")
    done < "$dest/$manifest_rel"
fi
record() { local e="$1	$2"; for x in "${entries[@]}"; do [ "$x" = "$e" ] && return 0; done; entries+=("$e"); }

# mkdir -p that records each folder it creates (paths recorded without DESTDIR).
make_dir() {
    local rel=$1 missing=() d=$1
    while [ "$d" != / ] && [ ! -d "$destdir$d" ]; do missing=("$d" "${missing[@]}"); d=$(dirname "$d"); done
    [ -z "$destdir" ] || mkdir -p "$destdir"   # DESTDIR itself is the packager's, not recorded
    for d in "${missing[@]}"; do mkdir -m 0755 "$destdir$d"; record dir "$d"; done
}
put() {  # put MODE SOURCE RELATIVE_DESTINATION
    make_dir "$(dirname "$prefix/$3")"
    rm -f "$dest/$3"
    install -m "$1" "$2" "$dest/$3"
    record file "$prefix/$3"
}
link() {  # link TARGET RELATIVE_NAME
    make_dir "$(dirname "$prefix/$2")"
    ln -sfn "$1" "$dest/$2"
    record link "$prefix/$2"
}

work=$(mktemp -d)
# The manifest is written however install.sh ends, so that a failed install can be uninstalled too;
# it lists itself, so that uninstall.sh removes exactly what is listed.
write_manifest() {
    if [ ${#entries[@]} -gt 0 ]; then
        make_dir "$(dirname "$prefix/$manifest_rel")"
        record file "$prefix/$manifest_rel"
        printf '%s\n' "${entries[@]}" > "$dest/$manifest_rel"
    fi
    rm -rf "$work"
}
trap write_manifest EXIT

# The library: stripped of DWARF, run path to the bundled runtime.
objcopy --strip-debug "$lib" "$work/libloramixer.so.$version"
patchelf --set-rpath '$ORIGIN/loramixer/swift' "$work/libloramixer.so.$version"
put 0755 "$work/libloramixer.so.$version" "lib/libloramixer.so.$version"
link "libloramixer.so.$version" "lib/libloramixer.so.$major"
link "libloramixer.so.$major" "lib/libloramixer.so"

# lmx: the same runtime, found from bin/.
objcopy --strip-debug "$build/lmx" "$work/lmx"
patchelf --set-rpath '$ORIGIN/../lib/loramixer/swift' "$work/lmx"
put 0755 "$work/lmx" bin/lmx

# The Swift runtime: every library ldd resolves in the toolchain's runtime folder (the folder of
# libswiftCore.so), for the library and for lmx. They carry RUNPATH $ORIGIN and find each other.
runtime_dir=$(ldd "$lib" | awk '$1 == "libswiftCore.so" { print $3 }' | xargs -r dirname)
[ -n "$runtime_dir" ] || { echo "install: ldd $lib does not resolve libswiftCore.so" >&2; exit 1; }
for so in $( (ldd "$lib"; ldd "$build/lmx") | awk -v d="$runtime_dir/" '$2 == "=>" && index($3, d) == 1 { print $3 }' | sort -u); do
    put 0644 "$so" "lib/loramixer/swift/$(basename "$so")"
done

for h in "$root"/include/*.h; do put 0644 "$h" "include/$(basename "$h")"; done

sed -e "s|@PREFIX@|$prefix|g" -e "s|@VERSION@|$version|g" "$root/tools/install/loramixer.pc.in" > "$work/loramixer.pc"
put 0644 "$work/loramixer.pc" lib/pkgconfig/loramixer.pc
put 0644 "$root/tools/install/loramixer.supp" share/loramixer/loramixer.supp

echo "installed loramixer $version in $dest ($(printf '%s\n' "${entries[@]}" | grep -c '^file') files, $(printf '%s\n' "${entries[@]}" | grep -c '^link') links; manifest $prefix/$manifest_rel)"
