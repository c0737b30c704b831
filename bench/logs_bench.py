#!/usr/bin/env python3
"""Helpers of bench/logs.sh; each prints one JSON object (or nothing) on stdout.

  logs_bench.py generate LOGS_DIR --lines N --services a,b,c [--span-hours H] [--needles K]
      Writes N stored log lines into LOGS_DIR exactly as kojibox's store lays them out: per
      service sealed segments `<id>.000001.jsonl`, ... of 10 MiB and the active `<id>.jsonl`,
      one JSON object per line, in time order. The services take turns; the times are evenly
      spaced over the last H hours (default 24) and end now. About 1 line in 10 is debug, 1 in
      20 warn, 1 in 100 error; K lines (default 10) carry the word NEEDLE-7F3A. Prints
      {"lines", "bytes", "files"}.

  logs_bench.py query HOME --runs N
      Times `logs.query` against the daemon serving HOME over one keep-alive connection:
      the newest 100 (no filter), every entry of the last minute (`since: "1m"`, limit 10,000),
      and a case-insensitive `contains` of a rare word over everything (limit 100). Prints,
      per query, the hits of the first answer and the median, min and max in ms.

  logs_bench.py latency HOME METHOD... --runs N
      Times each METHOD (no params) against the daemon serving HOME over one keep-alive
      connection; prints, per method, the median, min and max in ms.

  logs_bench.py export HOME PID FORMAT
      Calls `logs.export` of everything (FORMAT text or jsonl) on the daemon serving HOME, whose
      pid is PID, and prints the wall time, the entries written, the answer's path, and the
      daemon's resident memory before and its peak (VmHWM) after.
"""

import argparse
import http.client
import json
import os
import random
import statistics
import sys
import time
import urllib.parse

SEGMENT = 10 << 20
MESSAGES = [
    "GET /api/items?page={n} 200 {ms}ms",
    "POST /api/orders 201 {ms}ms user=u{n}",
    "cache miss for key items:{n}, loading from the database",
    "worker picked job {n} from queue default after {ms}ms",
    "connection from 127.0.0.1:{n} accepted, {ms} ms handshake",
]


def level(i):
    if i % 100 == 7:
        return "error"
    if i % 20 == 3:
        return "warn"
    if i % 10 == 5:
        return "debug"
    return "info"


def stamp(t):
    secs = int(t)
    ms = int((t - secs) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{ms:03d}Z"


def generate(args):
    services = args.services.split(",")
    rng = random.Random(42)
    needles = set(rng.sample(range(args.lines), args.needles))
    end = time.time()
    start = end - args.span_hours * 3600
    step = (end - start) / args.lines
    os.makedirs(args.logs, exist_ok=True)
    state = {}  # id -> [file, bytes in the segment, segment number]
    for s in services:
        state[s] = [open(os.path.join(args.logs, f"{s}.jsonl.gen"), "w"), 0, 1]
    total = 0
    files = 0

    def seal(s):
        nonlocal files
        f, _, number = state[s]
        f.close()
        os.rename(f.name, os.path.join(args.logs, f"{s}.{number:06d}.jsonl"))
        files += 1
        state[s] = [open(os.path.join(args.logs, f"{s}.jsonl.gen"), "w"), 0, number + 1]

    for i in range(args.lines):
        s = services[i % len(services)]
        message = MESSAGES[i % len(MESSAGES)].format(n=i, ms=i % 997 / 10)
        if i in needles:
            message += " NEEDLE-7F3A"
        line = json.dumps(
            {
                "ts": stamp(start + i * step),
                "level": level(i),
                "service": s,
                "message": message,
                "fields": {"stream": "stdout", "pid": str(4000 + len(s))},
            },
            separators=(",", ":"),
        )
        entry = state[s]
        if entry[1] + len(line) + 1 > SEGMENT:
            seal(s)
            entry = state[s]
        entry[0].write(line + "\n")
        entry[1] += len(line) + 1
        total += len(line) + 1
    for s in services:
        f = state[s][0]
        f.close()
        os.rename(f.name, os.path.join(args.logs, f"{s}.jsonl"))
        files += 1
    print(json.dumps({"lines": args.lines, "bytes": total, "files": files}))


def api(home):
    with open(os.path.join(home, "app/state/api.json")) as f:
        url = urllib.parse.urlparse(json.load(f)["url"])
    with open(os.path.join(home, "app/state/api-token")) as f:
        token = f.read().strip()
    conn = http.client.HTTPConnection(url.hostname, url.port)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def call(method, params):
        body = json.dumps({"method": method, "params": params})
        conn.request("POST", "/rpc", body=body, headers=headers)
        answer = json.loads(conn.getresponse().read())
        if "error" in answer:
            sys.exit(f"{method} failed: {answer['error']}")
        return answer["result"]

    return call


def query(args):
    call = api(args.home)
    queries = {
        "newest": {},
        "since": {"since": "1m", "limit": 10000},
        "contains": {"contains": "needle-7f3a"},
    }
    out = {}
    for name, filt in queries.items():
        times, hits = [], None
        for _ in range(args.runs):
            t = time.perf_counter()
            result = call("logs.query", filt)
            times.append((time.perf_counter() - t) * 1000)
            if hits is None:
                hits = len(result)
        out[name] = {
            "hits": hits,
            "median_ms": statistics.median(times),
            "min_ms": min(times),
            "max_ms": max(times),
        }
    print(json.dumps(out))


def latency(args):
    call = api(args.home)
    out = {}
    for method in args.methods:
        times = []
        for _ in range(args.runs):
            t = time.perf_counter()
            call(method, {})
            times.append((time.perf_counter() - t) * 1000)
        out[method] = {
            "median_ms": statistics.median(times),
            "min_ms": min(times),
            "max_ms": max(times),
        }
    print(json.dumps(out))


def status(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def export(args):
    call = api(args.home)
    before = status(args.pid, "VmRSS")
    t = time.perf_counter()
    result = call("logs.export", {"format": args.format})
    took = time.perf_counter() - t
    path = result if isinstance(result, str) else result.get("path")
    with open(os.path.join(args.home, path), "rb") as f:
        entries = sum(1 for _ in f)
    print(
        json.dumps(
            {
                "seconds": took,
                "entries": entries,
                "path": path,
                "bytes": os.path.getsize(os.path.join(args.home, path)),
                "rss_before_kb": before,
                "hwm_after_kb": status(args.pid, "VmHWM"),
            }
        )
    )


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate")
    g.add_argument("logs")
    g.add_argument("--lines", type=int, required=True)
    g.add_argument("--services", required=True)
    g.add_argument("--span-hours", type=float, default=24)
    g.add_argument("--needles", type=int, default=10)
    q = sub.add_parser("query")
    q.add_argument("home")
    q.add_argument("--runs", type=int, default=20)
    la = sub.add_parser("latency")
    la.add_argument("home")
    la.add_argument("methods", nargs="+")
    la.add_argument("--runs", type=int, default=50)
    e = sub.add_parser("export")
    e.add_argument("home")
    e.add_argument("pid", type=int)
    e.add_argument("format")
    args = p.parse_args()
    {"generate": generate, "query": query, "latency": latency, "export": export}[args.cmd](args)


if __name__ == "__main__":
    main()
