#!/usr/bin/env python3
"""Where a request's CPU goes, server by server, for the ratio targets.

    bench/cpu.py --workloads flask,big-256k --servers uwsgi-p2,berth,go-ceiling

Runs each server as bench.py does (same commands, same wrk, rounds
interleaved) and measures, over the wrk run, the CPU time of wrk, of the
server's processes (berth split into its Go process and its workers) and
the machine's idle time, each divided by the requests served. On a machine
whose every core is shared by wrk and the server, req/s is the cores over
the sum of these, so the table says what a target ratio leaves a server:
a ratio R to uWSGI needs the whole request, wrk and idle time included, in
1/R of uWSGI's. bench/RESULTS.md ("What bounds") reads these figures.
"""
import argparse
import os
import re
import resource
import signal
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (bench.py beside this file: its servers and workloads)

HZ = os.sysconf("SC_CLK_TCK")


def ticks(pid):
    """utime + stime of one process, in clock ticks (0 once it is gone)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return 0


def idle_ticks():
    with open("/proc/stat") as f:
        cpu = f.readline().split()
    return int(cpu[4]) + int(cpu[5])  # idle + iowait, all cores


def measure(name, cmd, workload, secs):
    module, path, conns, extra, slow = bench.WORKLOADS[workload]
    if slow:
        raise SystemExit("%s: slow clients are not measured here" % workload)
    with bench.Started(cmd, path) as st:
        if not st.ok:
            print("  %s did not start" % name, file=sys.stderr)
            return None
        p = st.proc
        bench.wrk(path, 1, conns, extra)  # warm-up
        procs = bench.tree(p.pid)
        ngx = bench.tree(st.nginx.pid) if st.nginx else []
        before = {q: ticks(q) for q in procs + ngx}
        idle0 = idle_ticks()
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.monotonic()
        wrk = ["wrk", "-t1", "-c%d" % conns, "-d%ds" % secs] + extra + ["http://%s%s" % (bench.ADDR, path)]
        out = subprocess.run(wrk, capture_output=True, text=True).stdout
        wall = time.monotonic() - t0
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        idle1 = idle_ticks()
        after = {q: ticks(q) for q in procs + ngx}
        m = re.search(r"(\d+) requests in", out)
        n = int(m.group(1)) if m else 0
        if n == 0 or "Non-2xx" in out:
            print("  %s served nothing, or errors" % name, file=sys.stderr)
            return None
        us = 1e6 / n
        own = (after[p.pid] - before[p.pid]) / HZ * us
        rest = sum(after[q] - before[q] for q in procs if q != p.pid) / HZ * us
        wrk_cpu = (ru1.ru_utime - ru0.ru_utime + ru1.ru_stime - ru0.ru_stime) * us
        return {
            "rps": n / wall,
            "wrk": wrk_cpu,
            "nginx": sum(after[q] - before[q] for q in ngx) / HZ * us,
            "main": own,
            "workers": rest,
            "idle": (idle1 - idle0) / HZ * us,
        }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workloads", default="hello,flask,big-256k")
    ap.add_argument("--servers", default="uwsgi-p2,berth,go-ceiling")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--secs", type=int, default=5)
    a = ap.parse_args()
    # A kill (SIGTERM) ends the run through the finally blocks, which
    # stop the servers (and nginx) started so far.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    bench.build()
    names = a.servers.split(",")
    for workload in a.workloads.split(","):
        table = bench.servers(bench.WORKLOADS[workload][0], workload)
        here = [n for n in names if n in table]
        res = bench.interleaved(measure, here, table, workload, a.rounds, a.secs)
        print("\n## %s: CPU per request in us (medians of %d rounds of %d s)" % (workload, a.rounds, a.secs))
        print("%-26s %9s %7s %7s %7s %8s %7s %7s %6s  %s" % ("server", "req/s", "wrk", "nginx", "main", "workers", "idle", "sum", "ratio", "rounds' kreq/s"))
        base = None
        for n in here:
            if not res[n]:
                print("%-26s did not run" % n)
                continue
            med = {k: statistics.median(r[k] for r in res[n]) for k in res[n][0]}
            if n == "uwsgi-p2":
                base = med["rps"]
            total = med["wrk"] + med["nginx"] + med["main"] + med["workers"] + med["idle"]
            print("%-26s %9.0f %7.1f %7.1f %7.1f %8.1f %7.1f %7.1f %6s  %s" % (
                n, med["rps"], med["wrk"], med["nginx"], med["main"], med["workers"], med["idle"], total,
                "%.2f" % (med["rps"] / base) if base else "-", " ".join("%.1f" % (r["rps"] / 1e3) for r in res[n])))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
