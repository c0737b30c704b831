#!/usr/bin/env python3
"""Measures one process supervisor running N small services; prints one JSON object.

Usage: supervise_bench.py --services N --running REGEX --idle SECONDS --trials N -- CMD...

CMD starts the supervisor in the foreground; its pid is the daemon measured. A service is a
direct child of the daemon whose command name is `sleep` (the fixture execs `sleep`). Measured:

- spawned_ms: daemon start -> N service processes exist (exec'd), from /proc;
- running_ms: daemon start -> the daemon has said every service is running (REGEX on its
  stdout/stderr, group 1 naming the service);
- idle_rss_kb, idle_cpu_ms: VmRSS after the idle period, and utime+stime over it;
- restart_fork_ms / restart_exec_ms: SIGKILL of one service -> a new child pid exists /
  that child has exec'd `sleep` (one trial per service in turn; median and all values);
- leftover: service processes still running after SIGTERM to the daemon and its exit.
"""

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time

TICK = os.sysconf("SC_CLK_TCK")
POLL = 0.0002


def children(pid):
    """Every child of every thread of `pid` (a forking thread owns its children)."""
    out = set()
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out.update(int(x) for x in f.read().split())
        except OSError:
            pass
    return out


def comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return None


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except OSError:
        return False


def services(pid):
    return {c for c in children(pid) if comm(c) == "sleep" and alive(c)}


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)


def wait(cond, limit, what):
    deadline = time.perf_counter() + limit
    while not cond():
        if time.perf_counter() > deadline:
            sys.exit(f"supervise_bench: timed out waiting for {what}")
        time.sleep(POLL)
    return time.perf_counter()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--services", type=int, default=10)
    ap.add_argument("--running", required=True)
    ap.add_argument("--idle", type=float, default=30)
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("cmd", nargs="+")
    args = ap.parse_args()
    n = args.services
    pattern = re.compile(args.running)

    running = set()
    all_running = threading.Event()
    t_running = [None]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    t0 = time.perf_counter()
    daemon = subprocess.Popen(
        args.cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, env=env, text=True,
    )
    pid = daemon.pid

    def read():
        for line in daemon.stdout:
            m = pattern.search(line)
            if m:
                running.add(m.group(1))
                if len(running) == n and t_running[0] is None:
                    t_running[0] = time.perf_counter()
                    all_running.set()

    threading.Thread(target=read, daemon=True).start()
    t_spawned = wait(lambda: len(services(pid)) >= n, 30, f"{n} services")
    if not all_running.wait(30):
        sys.exit(f"supervise_bench: the daemon reported {sorted(running)} running, not all {n}")
    seen = set(services(pid))

    time.sleep(2)  # settle
    ticks0 = cpu_ticks(pid)
    time.sleep(args.idle)
    idle_cpu_ms = (cpu_ticks(pid) - ticks0) * 1000 / TICK
    idle_rss = rss_kb(pid)

    forks, execs = [], []
    for trial in range(args.trials):
        before = services(pid)
        every = children(pid)
        victim = sorted(before)[trial % len(before)]
        start = time.perf_counter()
        os.kill(victim, signal.SIGKILL)
        new = set()

        def forked():
            new.update(children(pid) - every)
            return bool(new)

        forks.append((wait(forked, 10, "a new pid") - start) * 1000)
        child = min(new)
        execs.append((wait(lambda: comm(child) == "sleep", 10, "exec") - start) * 1000)
        wait(lambda: len(services(pid)) == n and victim not in services(pid), 10, "settling")
        seen |= services(pid)
        time.sleep(0.3)

    stop = time.perf_counter()
    daemon.send_signal(signal.SIGTERM)
    try:
        daemon.wait(30)
    except subprocess.TimeoutExpired:
        daemon.kill()
        sys.exit("supervise_bench: the daemon did not stop within 30 s of SIGTERM")
    stopped_ms = (time.perf_counter() - stop) * 1000
    time.sleep(0.5)
    leftover = sorted(p for p in seen if alive(p) and comm(p) == "sleep")

    print(json.dumps({
        "spawned_ms": round((t_spawned - t0) * 1000, 1),
        "running_ms": round((t_running[0] - t0) * 1000, 1),
        "idle_rss_kb": idle_rss,
        "idle_seconds": args.idle,
        "idle_cpu_ms": round(idle_cpu_ms, 1),
        "restart_fork_ms": round(statistics.median(forks), 2),
        "restart_exec_ms": round(statistics.median(execs), 2),
        "restart_fork_all": [round(x, 2) for x in forks],
        "restart_exec_all": [round(x, 2) for x in execs],
        "stop_all_ms": round(stopped_ms, 1),
        "exit_code": daemon.returncode,
        "leftover": leftover,
    }))


if __name__ == "__main__":
    main()
