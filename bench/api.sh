#!/usr/bin/env bash
# Benchmark: `services.list` over keep-alive against a real daemon (release build), with wrk
# (Debian package `wrk`) posting the request. Prints requests per second and latency
# percentiles. Target: over 20,000 req/s with p99 under 5 ms.
#
# Usage: bench/api.sh [seconds=10] [connections=32]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
conns=${2:-32}
command -v wrk >/dev/null || { echo "wrk is not installed: apt-get install wrk" >&2; exit 1; }
cargo build --release -q -p bundler -p launcher
bin=$PWD/target/release
work=$(mktemp -d /tmp/kojibox-bench-api.XXXXXX)
cleanup() { [ -n "${daemon:-}" ] && kill "$daemon" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
chmod 755 "$work"

# A bundle of three small services, so services.list has something to list.
. bench/lib.sh
write_sleeper_recipe "$work/recipe.toml" "$work/payload" svc-a svc-b svc-c
"$bin/kojibox-bundle" keygen --out "$work/key" >/dev/null
"$bin/kojibox-bundle" build "$work/recipe.toml" --key "$work/key.key" --out "$work/b.kbx" --cache "$work/cache" >/dev/null 2>&1
"$bin/kojibox" --home "$work/home" install "$work/b.kbx" --pubkey "$work/key.pub" >/dev/null 2>&1
"$bin/kojibox" --home "$work/home" serve --up 2>"$work/serve.log" &
daemon=$!
for _ in $(seq 100); do [ -s "$work/home/app/state/api.json" ] && break; sleep 0.1; done
url=$(python3 -c "import json,sys;print(json.load(open(sys.argv[1]))['url'])" "$work/home/app/state/api.json")
token=$(cat "$work/home/app/state/api-token")
cat > "$work/post.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"method":"services.list","params":{}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $token"
LUA
# Check the request works before measuring.
curl -sf -X POST "$url/rpc" -H "Authorization: Bearer $token" -d '{"method":"services.list","params":{}}' | grep -q '"result"'
out=$(wrk -t2 -c"$conns" -d"${secs}s" --latency -s "$work/post.lua" "$url/rpc")
echo "$out" >&2
rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
p50=$(echo "$out" | awk '$1 == "50%" {print $2}')
p90=$(echo "$out" | awk '$1 == "90%" {print $2}')
p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
errors=$(echo "$out" | awk '/Non-2xx/ {print $5}')
echo "services.list over keep-alive: wrk -t2 -c$conns -d${secs}s; $(nproc) cores (wrk and the daemon share them)"
echo
echo "| metric | value |"
echo "|---|---|"
echo "| requests/s | $rps |"
echo "| p50 latency | $p50 |"
echo "| p90 latency | $p90 |"
echo "| p99 latency | $p99 |"
echo "| non-2xx answers | ${errors:-0} |"
