# Shared by the benchmark scripts (sourced, not run).

# libtorch_peer DIR TARGET WITHOUT: configures DIR when it has no build yet, then prints TARGET
# when DIR builds it (Meson found LibTorch), else prints nothing and notes on stderr that only
# WITHOUT runs.
libtorch_peer() {
  local dir=$1 target=$2 without=$3
  [[ -f "$dir/build.ninja" ]] || meson setup "$dir" -Dlibtorch=auto >/dev/null
  if ninja -C "$dir" -t targets all 2>/dev/null | grep -q "^$target:"; then
    echo "$target"
  else
    echo "note: LibTorch peer not configured in $dir (meson configure $dir -Dlibtorch=enabled); $without" >&2
  fi
}
