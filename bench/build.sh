#!/usr/bin/env bash
# Build times of the workspace, as a table: a clean `cargo build --workspace --all-targets` in a
# target folder of its own (target/bench-build, so the usual target/ is left alone), then an
# incremental one after a one-string edit of a supervisor file (the edit is undone after each
# run), and after a plain `touch` of it.
#
# Usage: bench/build.sh [RUNS]   (default 3 incremental runs; the clean build runs once)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
export CARGO_TARGET_DIR=$PWD/target/bench-build
file=supervisor/src/actor.rs
cargo fetch --locked -q
rm -rf "$CARGO_TARGET_DIR"
seconds() { local s=$EPOCHREALTIME; "$@" >/dev/null 2>&1; awk -v a="$s" -v b="$EPOCHREALTIME" 'BEGIN { print b - a }'; }
clean=$(seconds cargo build --workspace --all-targets --locked)
backup=$(mktemp); cp "$file" "$backup"; trap 'cp "$backup" "$file"; rm -f "$backup"' EXIT
edits=(); touches=()
for _ in $(seq "$runs"); do
  sed -i '0,/"starting"/s//"starting."/' "$file"
  edits+=("$(seconds cargo build --workspace --all-targets --locked)")
  cp "$backup" "$file"
  cargo build --workspace --all-targets --locked -q
  touch "$file"
  touches+=("$(seconds cargo build --workspace --all-targets --locked)")
done
best() { printf '%s\n' "$@" | sort -n | head -1; }
printf '| build (%s, %s cores) | seconds |\n|---|---|\n' "$(git rev-parse --short HEAD)" "$(nproc)"
printf '| clean, workspace, all targets | %.1f |\n' "$clean"
printf '| after editing one string in %s (best of %s) | %.1f |\n' "$file" "$runs" "$(best "${edits[@]}")"
printf '| after touching it (best of %s) | %.1f |\n' "$runs" "$(best "${touches[@]}")"
