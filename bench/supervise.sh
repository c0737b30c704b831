#!/usr/bin/env bash
# Benchmark: the supervisor (`kojibox serve --up`) against supervisord (PyPI `supervisor`) in the
# same run, each supervising the same 10 small services (a script that execs `sleep 100000`):
# the daemon's idle RSS and CPU over the idle period, the time until all 10 run, and the
# crash-to-restart latency (SIGKILL of a service to its new pid). bench/supervise_bench.py
# measures each daemon from /proc.
# Targets: kojibox idle RSS under 15 MB and below supervisord's; restart latency under 50 ms
# plus the configured backoff (0 ms here).
#
# Usage: bench/supervise.sh [idle_seconds=30] [restart_trials=10]
#        (builds the release binaries; installs supervisor into target/bench-venv with pip)
set -euo pipefail
cd "$(dirname "$0")/.."
idle=${1:-30}
trials=${2:-10}
n=10
cargo build --release -q -p bundler -p launcher
bundle_bin=$PWD/target/release/kojibox-bundle
kojibox=$PWD/target/release/kojibox
venv=$PWD/target/bench-venv
if [ ! -x "$venv/bin/supervisord" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q supervisor
fi
supervisor_version=$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("supervisor"))')

# Under /tmp and world-searchable: as root, both run the services as `nobody`.
work=$(mktemp -d /tmp/kojibox-bench-supervise.XXXXXX)
chmod 755 "$work"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/payload" "$work/sv-logs"
printf '#!/bin/sh\nexec sleep 100000\n' > "$work/payload/run"
chmod 755 "$work/payload/run"

# kojibox: one bundle with 10 services, all running that script; pid health check (default),
# backoff 0 (the smallest) and retries enough for every trial.
{
  printf 'version = "1.0.0"\nsource = "bench"\n'
  for i in $(seq 0 $((n - 1))); do
    cat <<TOML

[[service]]
name = "svc$i"
version = "1"
  [service.definition]
  restartPolicy = { maxRetries = 1000, backoffMs = 0 }
  [[service.target]]
  os = "linux"
  arch = "x64"
  binPath = "run"
  source = { path = "$work/payload" }
TOML
  done
} > "$work/recipe.toml"
"$bundle_bin" keygen --out "$work/key" > /dev/null
"$bundle_bin" build "$work/recipe.toml" --key "$work/key.key" --out "$work/b.kbx" \
  --target linux-x64 --cache "$work/cache" > /dev/null 2>&1
"$kojibox" --home "$work/home" install "$work/b.kbx" --pubkey "$work/key.pub" > /dev/null 2>&1

# supervisord: the same script, restarted at once (autorestart, startsecs=0).
user_line=""
[ "$(id -u)" = 0 ] && user_line="user=nobody"
{
  cat <<INI
[supervisord]
nodaemon=true
logfile=$work/supervisord.log
pidfile=$work/supervisord.pid
childlogdir=$work/sv-logs
loglevel=info
INI
  for i in $(seq 0 $((n - 1))); do
    cat <<INI

[program:svc$i]
command=$work/payload/run
autorestart=true
startsecs=0
startretries=1000
$user_line
INI
  done
} > "$work/supervisord.conf"

run() { python3 bench/supervise_bench.py --services "$n" --idle "$idle" --trials "$trials" "$@"; }
k=$(run --running '^(svc\d+): running' -- "$kojibox" --home "$work/home" serve --up)
s=$(run --running 'success: (svc\d+) entered RUNNING state' -- \
  "$venv/bin/supervisord" -n -c "$work/supervisord.conf")
echo "kojibox:     $k" >&2
echo "supervisord: $s" >&2

python3 - "$k" "$s" "$idle" "$trials" "$supervisor_version" <<'PY'
import json, sys
k, s = json.loads(sys.argv[1]), json.loads(sys.argv[2])
idle, trials, version = sys.argv[3], sys.argv[4], sys.argv[5]
print(f"10 services (`exec sleep 100000`); idle {idle} s; {trials} restart trials; "
      f"supervisord {version}")
print()
print("| measure | kojibox | supervisord |")
print("|---|---|---|")
row = lambda name, f: print(f"| {name} | {f(k)} | {f(s)} |")
row("idle RSS of the daemon", lambda r: f"{r['idle_rss_kb'] / 1024:.1f} MiB")
row(f"CPU over {idle} s idle", lambda r: f"{r['idle_cpu_ms']:.0f} ms "
    f"({r['idle_cpu_ms'] / 10 / float(idle):.2f}%)")
row("start to all 10 spawned", lambda r: f"{r['spawned_ms']:.0f} ms")
row("start to all 10 reported running", lambda r: f"{r['running_ms']:.0f} ms")
row("SIGKILL to new pid (median)", lambda r: f"{r['restart_fork_ms']:.1f} ms")
row("SIGKILL to new pid running `sleep` (median)", lambda r: f"{r['restart_exec_ms']:.1f} ms")
row("SIGTERM to exit, all stopped", lambda r: f"{r['stop_all_ms']:.0f} ms")
row("services left after exit", lambda r: str(len(r["leftover"])))
PY
