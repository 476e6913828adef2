#!/usr/bin/env bash
# uninstall.sh PREFIX [DESTDIR] — what `make uninstall` runs: removes exactly the files and links
# listed in DESTDIR+PREFIX/share/loramixer/install-manifest.txt (written by install.sh), then the
# folders install.sh created, if they are empty. Nothing else is touched.
set -euo pipefail
prefix=$1 destdir=${2:-}
manifest=$destdir$prefix/share/loramixer/install-manifest.txt
[ -f "$manifest" ] || { echo "uninstall: no $manifest: nothing of loramixer is installed in $destdir$prefix" >&2; exit 1; }
mapfile -t entries < "$manifest"
removed=0
for e in "${entries[@]}"; do
    kind=${e%%	*} path=$destdir${e#*	}
    case $kind in
        file|link) if [ -f "$path" ] || [ -L "$path" ]; then rm -f "$path"; removed=$((removed + 1)); fi ;;
    esac
done
# Folders, deepest first; one that still holds something not ours stays.
kept=0
while IFS= read -r d; do
    rmdir "$destdir$d" 2>/dev/null || { [ -d "$destdir$d" ] && kept=$((kept + 1)); }
done < <(printf '%s\n' "${entries[@]}" | awk -F'\t' '$1 == "dir" { print length($2) "\t" $2 }' | sort -rn | cut -f2-)
echo "uninstalled loramixer from $destdir$prefix ($removed files and links removed$([ $kept -gt 0 ] && echo ", $kept non-empty folders kept"))"
