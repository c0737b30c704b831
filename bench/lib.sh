# Shared by the benchmark scripts (sourced, not run).

# write_corpus_recipe FILE CORPUS: a recipe bundling the folder CORPUS as one linux-x64 payload.
write_corpus_recipe() {
  local first
  first=$(cd "$2" && find . -type f ! -name .complete | sort | sed -n '1s|^\./||p')
  cat > "$1" <<TOML
version = "1.0.0"
source = "bench"
[[service]]
name = "corpus"
version = "1"
  [[service.target]]
  os = "linux"
  arch = "x64"
  binPath = "$first"
  source = { path = "$2" }
TOML
}

# write_sleeper_recipe FILE PAYLOAD NAME...: a recipe of services NAME... (linux-x64), each
# running PAYLOAD/bin/svc, a script that execs `sleep 100000` (written here).
write_sleeper_recipe() {
  local file=$1 payload=$2 n; shift 2
  mkdir -p "$payload/bin"
  printf '#!/bin/sh\nexec sleep 100000\n' > "$payload/bin/svc"; chmod 755 "$payload/bin/svc"
  {
    echo 'version = "1.0.0"'; echo 'source = "bench"'
    for n in "$@"; do
      printf '[[service]]\nname = "%s"\nversion = "1"\n  [[service.target]]\n  os = "linux"\n  arch = "x64"\n  binPath = "bin/svc"\n  source = { path = "%s" }\n' "$n" "$payload"
    done
  } > "$file"
}

# build_release PACKAGE...: a quiet, offline release build of the packages. Waits for the
# workspace's build lock (/tmp/kojibox-cargo.lock) when it exists, so two builds never run at
# once. Skipped when KOJIBOX_BENCH_NO_BUILD=1 (the binaries in target/release are used as they
# are) or when KOJIBOX_BENCH_BIN names a folder of binaries to use instead.
build_release() {
  [ "${KOJIBOX_BENCH_NO_BUILD:-0}" = 1 ] || [ -n "${KOJIBOX_BENCH_BIN:-}" ] && return 0
  local args=(build --release --offline -q) p
  for p in "$@"; do args+=(-p "$p"); done
  if [ -e /tmp/kojibox-cargo.lock ]; then
    flock /tmp/kojibox-cargo.lock cargo "${args[@]}"
  else
    cargo "${args[@]}"
  fi
}

# busy: true while a compiler or linker runs on this machine (another build would skew timings).
busy() {
  pgrep -x rustc >/dev/null || pgrep -x cc1 >/dev/null || pgrep -x cc1plus >/dev/null \
    || pgrep -x ld >/dev/null || pgrep -x rust-lld >/dev/null || pgrep -x cargo >/dev/null
}

# wait_quiet: waits (up to 30 minutes) until no build runs; says so on stderr when it waits.
wait_quiet() {
  local waited=0
  while busy && [ "$waited" -lt 1800 ]; do
    [ "$waited" = 0 ] && echo "waiting for a build on this machine to end..." >&2
    sleep 5; waited=$((waited + 5))
  done
}

# seconds CMD...: runs CMD (output discarded) and prints its wall time in seconds; fails, with
# CMD's stderr, when CMD fails.
seconds() {
  local a b err rc=0
  err=$(mktemp)
  a=$EPOCHREALTIME
  "$@" >/dev/null 2>"$err" || rc=$?
  b=$EPOCHREALTIME
  if [ "$rc" != 0 ]; then
    echo "failed ($rc): $*" >&2; cat "$err" >&2; rm -f "$err"; return "$rc"
  fi
  rm -f "$err"
  awk -v a="$a" -v b="$b" 'BEGIN { printf "%.3f\n", b - a }'
}

# stats VALUE...: "median min max" of the values.
stats() {
  printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
    m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    printf "%.3f %.3f %.3f\n", m, v[1], v[NR] }'
}

# row LABEL VALUE...: a markdown table row "| LABEL | median | min | max |" in seconds.
row() {
  local label=$1; shift
  read -r med lo hi < <(stats "$@")
  printf '| %s | %.2f | %.2f | %.2f |\n' "$label" "$med" "$lo" "$hi"
}

# ratio A B: A / B to two decimals.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f\n", a / b }'; }

# median VALUE...: the median alone.
median() { stats "$@" | cut -d' ' -f1; }
