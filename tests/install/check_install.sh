#!/usr/bin/env bash
# Installs kiln into a scratch prefix (meson install --destdir), then builds the README's short
# example the way a user would: `pkg-config --cflags --libs kiln`, -Wall -Wextra. Fails when the
# pkg-config flags carry warning switches (kiln must not silence a user's warnings), when kiln's
# own headers emit any warning, or when the example does not build and run.
#   check_install.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1 src=$2
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
meson install -C "$build" --destdir "$scratch/root" --no-rebuild --quiet >/dev/null
pc=$(find "$scratch/root" -name kiln.pc | head -1)
# the file names the final prefix; point it into the scratch tree (Eigen and oneTBB stay the system's)
sed -i "s|^prefix=|prefix=$scratch/root|" "$pc"
export PKG_CONFIG_PATH="$(dirname "$pc")"
cflags=$(pkg-config --cflags kiln) libs=$(pkg-config --libs kiln)
flags="$cflags $libs"
echo "pkg-config kiln: $flags"
if grep -q -- "-Wno-" <<<"$flags"; then echo "FAIL: kiln's pkg-config flags silence warnings"; exit 1; fi
awk '/^## A short example/{f=1} f&&/^```cpp/{p=1;next} p&&/^```/{exit} p' "$src/README.md" > "$scratch/example.cpp"
[[ -s "$scratch/example.cpp" ]] || { echo "FAIL: no C++ block under '## A short example' in README.md"; exit 1; }
include_root="$(pkg-config --variable=includedir kiln)/kiln"
# shellcheck disable=SC2086
if ! c++ -std=c++20 -O2 -march=native -Wall -Wextra $cflags "$scratch/example.cpp" -o "$scratch/example" $libs \
     -fdiagnostics-color=never >"$scratch/log" 2>&1; then
  cat "$scratch/log"; echo "FAIL: the README example does not build against the installed kiln"; exit 1
fi
# Warnings located in kiln's installed headers or in the example itself are ours; Eigen's and
# GCC's own (e.g. GCC 12's AVX-512 intrinsics) are not, and are listed only for information.
ours=$(grep -E "^($include_root|$scratch/example.cpp)[^ ]*: warning" "$scratch/log" || true)
others=$(grep -c ": warning" "$scratch/log" || true)
echo "warnings from other headers (Eigen, GCC): $others"
if [[ -n "$ours" ]]; then echo "$ours"; echo "FAIL: warnings in kiln's headers or the README example"; exit 1; fi
"$scratch/example" | head -3
echo "ok: installed kiln builds the README example warning-free"
