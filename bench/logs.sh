#!/usr/bin/env bash
# Benchmark: the log store (issue 15), against peers in the same run.
#
# 1. Flood: a child writing 1,000,000 lines (~100 bytes each) as fast as it can (`seq -f`), its
#    own time from its first line to its last: alone (stdout to /dev/null, and to a file on
#    disk), under kojibox (`kojibox serve --up`: pipe, queue, level, redaction, JSONL store)
#    and under supervisord (PyPI `supervisor`, stdout to its log file). Interleaved, `runs`
#    times. Also what each kept: lines on disk, and for kojibox the lines it reported dropped.
#    Target: under kojibox the child runs at least 0.9x as fast as alone (to /dev/null).
# 2. Query: 1,000,000 stored lines (~150 MB) of three services written in the store's layout
#    (bench/logs_bench.py generate), queried through a running daemon's API over keep-alive:
#    the newest 100 (target under 20 ms), everything of the last minute (under 20 ms), a
#    `contains` over everything (under 1 s); `grep -ci` over the same files beside it.
# 3. Export: all 1,000,000 lines through `logs.export` (text and jsonl): time and the daemon's
#    peak RSS; and `kojibox logs --export` without a daemon under /usr/bin/time (its max RSS).
#
# Usage: bench/logs.sh [runs=3] [query_runs=20]
#        (builds the release binaries first; KOJIBOX_BENCH_NO_BUILD=1 uses them as they are;
#        KOJIBOX_BENCH_BIN=DIR takes them from DIR; KOJIBOX_BENCH_KEEP=1 keeps the work folders;
#        installs supervisor into target/bench-venv)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
query_runs=${2:-20}
lines=1000000
. bench/lib.sh
build_release bundler launcher
bindir=${KOJIBOX_BENCH_BIN:-$PWD/target/release}
bundle_bin=$bindir/kojibox-bundle
kojibox=$bindir/kojibox
venv=$PWD/target/bench-venv
if [ ! -x "$venv/bin/supervisord" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q supervisor
fi
supervisor_version=$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("supervisor"))')
[ -x /usr/bin/time ] || { echo "GNU time is needed: apt-get install time" >&2; exit 1; }

# Under /tmp and world-searchable: as root, supervisord runs the child as `nobody` (kojibox as its own service user). The
# query and export data go under target/ (on disk, like a real home).
work=$(mktemp -d /tmp/kojibox-bench-logs.XXXXXX)
store=$(mktemp -d "$PWD/target/bench-logs.XXXXXX")
chmod 755 "$work"
daemon=
cleanup() {
  [ -n "$daemon" ] && kill "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null
  if [ -n "${KOJIBOX_BENCH_KEEP:-}" ]; then
    echo "kept $work and $store" >&2
  else
    rm -rf "$work" "$store"
  fi
}
trap cleanup EXIT

# The child: times its own output, then holds (so neither supervisor restarts it).
mkdir -p "$work/payload/bin" "$work/sv-data" "$work/sv-logs"
chmod 777 "$work/sv-data"
cat > "$work/payload/bin/flood" <<'SH'
#!/bin/sh
t0=$(date +%s%N)
seq -f 'flood line %.0f: GET /api/items?page=2 200 0.8ms the quick brown fox jumps over the dog' 1 "$LINES"
t1=$(date +%s%N)
echo "$t0 $t1" > "$TIMING"
[ -n "$HOLD" ] && exec sleep 100000
exit 0
SH
chmod 755 "$work/payload/bin/flood"

cat > "$work/recipe.toml" <<TOML
version = "1.0.0"
source = "bench"
[[service]]
name = "flood"
version = "1"
env = { LINES = "$lines", TIMING = "\${data}/timing", HOLD = "1" }
  [service.definition]
  restartPolicy = { maxRetries = 0, backoffMs = 0 }
  [[service.target]]
  os = "linux"
  arch = "x64"
  binPath = "bin/flood"
  source = { path = "$work/payload" }
TOML
"$bundle_bin" keygen --out "$work/key" > /dev/null
"$bundle_bin" build "$work/recipe.toml" --key "$work/key.key" --out "$work/b.kbx" \
  --target linux-x64 --cache "$work/cache" > /dev/null 2>&1
"$kojibox" --home "$work/home" install "$work/b.kbx" --pubkey "$work/key.pub" > /dev/null 2>&1

user_line=""
[ "$(id -u)" = 0 ] && user_line="user=nobody"
cat > "$work/supervisord.conf" <<INI
[supervisord]
nodaemon=true
logfile=$work/supervisord.log
pidfile=$work/supervisord.pid
childlogdir=$work/sv-logs

[program:flood]
command=$work/payload/bin/flood
environment=LINES="$lines",TIMING="$work/sv-data/timing",HOLD="1"
autorestart=false
startsecs=0
stdout_logfile=$work/sv-logs/flood.log
stdout_logfile_maxbytes=0
$user_line
INI

# ms_of FILE: the child's time in ms from its timing file ("t0 t1" in ns).
ms_of() { awk '{ printf "%.1f\n", ($2 - $1) / 1e6 }' "$1"; }
# wait_for FILE: until FILE exists (120 s at most).
wait_for() {
  for _ in $(seq 1200); do [ -s "$1" ] && return 0; sleep 0.1; done
  echo "timed out waiting for $1" >&2; return 1
}
stop_daemon() { kill "$daemon"; wait "$daemon" 2>/dev/null || true; daemon=; }

alone_null() {
  LINES=$lines TIMING=$work/alone-timing HOLD= "$work/payload/bin/flood" > /dev/null
  ms_of "$work/alone-timing"
}
alone_pipe() {
  LINES=$lines TIMING=$work/alone-timing HOLD= "$work/payload/bin/flood" | cat > /dev/null
  ms_of "$work/alone-timing"
}
alone_file() {
  rm -f "$work/alone.out"
  LINES=$lines TIMING=$work/alone-timing HOLD= "$work/payload/bin/flood" > "$work/alone.out"
  ms_of "$work/alone-timing"
}
# under_kojibox: prints "ms stored dropped".
under_kojibox() {
  local data=$work/home/runtime/data/flood
  rm -rf "$work/home/app/logs"
  rm -f "$data"/timing
  "$kojibox" --home "$work/home" serve --up > "$work/serve.log" 2>&1 &
  daemon=$!
  # (In a subshell: the trap does not know this daemon.)
  wait_for "$data/timing" || { stop_daemon; return 1; }
  stop_daemon
  local stored dropped
  stored=$(cat "$work/home/app/logs"/flood*.jsonl | grep -c '"message":"flood line' || true)
  dropped=$(cat "$work/home/app/logs"/flood*.jsonl \
    | grep -o '"dropped":"[0-9]*"' | grep -o '[0-9]*' | awk '{ s += $1 } END { print s + 0 }')
  echo "$(ms_of "$data/timing") $stored $dropped"
}
# under_supervisord: prints "ms stored".
under_supervisord() {
  rm -f "$work/sv-data/timing" "$work/sv-logs/flood.log"
  "$venv/bin/supervisord" -n -c "$work/supervisord.conf" > /dev/null 2>&1 &
  daemon=$!
  wait_for "$work/sv-data/timing" || { stop_daemon; return 1; }
  stop_daemon
  echo "$(ms_of "$work/sv-data/timing") $(grep -c '^flood line' "$work/sv-logs/flood.log" || true)"
}

an=(); ap=(); af=(); kt=(); ks=(); kd=(); st=(); ss=()
for i in $(seq "$runs"); do
  wait_quiet
  order=(alone_null alone_pipe alone_file under_kojibox under_supervisord)
  [ $((i % 2)) = 0 ] && order=(under_supervisord under_kojibox alone_file alone_pipe alone_null)
  for step in "${order[@]}"; do
    case $step in
      alone_null) an+=("$(alone_null)") ;;
      alone_pipe) ap+=("$(alone_pipe)") ;;
      alone_file) af+=("$(alone_file)") ;;
      under_kojibox) read -r t s d < <(under_kojibox); kt+=("$t"); ks+=("$s"); kd+=("$d") ;;
      under_supervisord) read -r t s < <(under_supervisord); st+=("$t"); ss+=("$s") ;;
    esac
  done
  echo "run $i: alone ${an[-1]} ms, into cat ${ap[-1]} ms, to a file ${af[-1]} ms, kojibox ${kt[-1]} ms" \
    "(stored ${ks[-1]}, dropped ${kd[-1]}), supervisord ${st[-1]} ms (stored ${ss[-1]})" >&2
done

int() { printf '%.0f' "$1"; }
ms_row() { # LABEL KEPT VALUE...: "| label | median ms | min | max | speed vs alone | kept |"
  local label=$1 kept=$2; shift 2
  read -r med lo hi < <(stats "$@")
  printf '| %s | %.0f | %.0f | %.0f | %s | %s |\n' "$label" "$med" "$lo" "$hi" \
    "$(ratio "$(median "${an[@]}")" "$med")" "$kept"
}
echo "## Flood: $lines lines of ~100 bytes, $runs runs, $(nproc) cores; supervisord $supervisor_version"
echo
echo "| child's output goes to | median ms | min ms | max ms | speed vs alone | lines kept (median) |"
echo "|---|---|---|---|---|---|"
ms_row "/dev/null (alone)" "-" "${an[@]}"
ms_row "a pipe read by \`cat > /dev/null\` (alone)" "-" "${ap[@]}"
ms_row "a file on disk (alone)" "$lines" "${af[@]}"
ms_row "**kojibox** (pipe, queue, store)" \
  "$(int "$(median "${ks[@]}")") stored, $(int "$(median "${kd[@]}")") reported dropped" "${kt[@]}"
ms_row "supervisord (pipe, log file)" "$(int "$(median "${ss[@]}")")" "${st[@]}"
echo

# 4 (here, while the flood home is at hand): metrics.snapshot beside services.list, the flood
# child running (holding after its output), its supervisor's sampler warm.
rm -f "$work/home/runtime/data/flood/timing" "$work/home/app/state/api.json"
"$kojibox" --home "$work/home" serve --up > "$work/serve.log" 2>&1 &
daemon=$!
wait_for "$work/home/runtime/data/flood/timing"
sleep 1
lat=$(python3 bench/logs_bench.py latency "$work/home" metrics.snapshot services.list --runs 200)
stop_daemon

# 2. Query: three services installed (never started), their stores generated.
write_sleeper_recipe "$work/qrecipe.toml" "$work/qpayload" web worker db
"$bundle_bin" build "$work/qrecipe.toml" --key "$work/key.key" --out "$work/q.kbx" \
  --target linux-x64 --cache "$work/cache" > /dev/null 2>&1
qhome=$store/home
"$kojibox" --home "$qhome" install "$work/q.kbx" --pubkey "$work/key.pub" > /dev/null 2>&1
gen=$(python3 bench/logs_bench.py generate "$qhome/app/logs" --lines "$lines" --services web,worker,db)
gen_bytes=$(echo "$gen" | python3 -c 'import json,sys; print(json.load(sys.stdin)["bytes"])')
gen_files=$(echo "$gen" | python3 -c 'import json,sys; print(json.load(sys.stdin)["files"])')
cat "$qhome"/app/logs/*.jsonl > /dev/null # warm, as after the daemon wrote them

start_query_daemon() {
  rm -f "$qhome/app/state/api.json"
  "$kojibox" --home "$qhome" serve > "$work/qserve.log" 2>&1 &
  daemon=$!
  wait_for "$qhome/app/state/api.json"
}
start_query_daemon
wait_quiet
# 3 first (the daemon's peak RSS is only meaningful before other work raised it).
ex_text=$(python3 bench/logs_bench.py export "$qhome" "$daemon" text)
ex_jsonl=$(python3 bench/logs_bench.py export "$qhome" "$daemon" jsonl)
q=$(python3 bench/logs_bench.py query "$qhome" --runs "$query_runs")
stop_daemon
grep_ms=()
for _ in $(seq 5); do
  grep_ms+=("$(awk -v s="$(seconds grep -ci needle-7f3a "$qhome"/app/logs/*.jsonl)" \
    'BEGIN { printf "%.1f\n", s * 1000 }')")
done
rm -rf "$qhome/app/logs/exports"
cli=$( { /usr/bin/time -f '%e %M' "$kojibox" --home "$qhome" logs --export > /dev/null; } 2>&1 | tail -1)

python3 - "$q" "$ex_text" "$ex_jsonl" "$cli" "$gen_bytes" "$gen_files" "$query_runs" "$(median "${grep_ms[@]}")" "$lat" <<'PY'
import json, sys
q, t, j = (json.loads(a) for a in sys.argv[1:4])
lat = json.loads(sys.argv[9])
cli_s, cli_kb = sys.argv[4].split()
size, files, runs, grep_ms = int(sys.argv[5]), sys.argv[6], sys.argv[7], float(sys.argv[8])
print(f"## Query: 1,000,000 stored lines, {size / 1e6:.0f} MB in {files} files of 3 services; "
      f"{runs} calls each over keep-alive")
print()
print("| logs.query | hits | median ms | min ms | max ms | target |")
print("|---|---|---|---|---|---|")
row = lambda name, r, target: print(
    f"| {name} | {r['hits']} | {r['median_ms']:.1f} | {r['min_ms']:.1f} | {r['max_ms']:.1f} | {target} |")
row("newest 100 of all (no filter)", q["newest"], "< 20 ms")
row("`since: \"1m\"`, limit 10000 (every entry of the last minute)", q["since"], "< 20 ms")
row("`contains` a rare word, over everything", q["contains"], "< 1000 ms")
print(f"| for scale: `grep -ci` of the word over the same files | - | {grep_ms:.1f} | | | |")
print()
print("## Export: every line (`logs.export` through the daemon; the CLI without one)")
print()
print("| export | entries | MB written | seconds | memory |")
print("|---|---|---|---|---|")
for name, r in (("logs.export text", t), ("logs.export jsonl", j)):
    print(f"| {name} | {r['entries']} | {r['bytes'] / 1e6:.0f} | {r['seconds']:.2f} | "
          f"daemon RSS {r['rss_before_kb'] / 1024:.1f} MiB before, peak {r['hwm_after_kb'] / 1024:.1f} MiB |")
print(f"| `kojibox logs --export` (no daemon; text) | {t['entries']} | {t['bytes'] / 1e6:.0f} | "
      f"{float(cli_s):.2f} | max RSS {int(cli_kb) / 1024:.1f} MiB |")
print()
print("## metrics.snapshot: 200 calls over keep-alive, one service running; services.list beside it")
print()
print("| method | median ms | min ms | max ms |")
print("|---|---|---|---|")
for m in ("metrics.snapshot", "services.list"):
    r = lat[m]
    print(f"| {m} | {r['median_ms']:.2f} | {r['min_ms']:.2f} | {r['max_ms']:.2f} |")
PY
