#!/usr/bin/env python3
"""berth beside its peers: one command, one run, ratios to uWSGI.

    bench/bench.py                      # every workload, every server, 2 rounds
    bench/bench.py --workloads hello,flask --servers uwsgi-p2,berth --rounds 3

Builds berth (and the Go-only ceiling server), then for each workload runs
each server in turn — rounds interleaved, so drift hits all alike — with
wrk on loopback, and prints one table per workload: median req/s, p50/p99
latency, errors, peak RSS of the server's processes, ratio to uWSGI with 2
processes. Every server gets 2 Python processes (the machine's cores).
wrk runs with one thread throughout (see wrk()). A last table (fair-50)
counts how many of 50 keep-alive connections each server answers at all:
uWSGI's processes each keep to one connection.
Needs Debian's wrk gunicorn uwsgi uwsgi-plugin-python3 python3-waitress
python3-flask.
"""
import argparse
import os
import re
import resource
import selectors
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
APPS = os.path.join(HERE, "apps")
PY = "/usr/bin/python3"
PORT = int(os.environ.get("BENCH_PORT", "18000"))
ADDR = "127.0.0.1:%d" % PORT

# name: (app module, path, wrk connections, extra wrk args, slow clients)
WORKLOADS = {
    "hello": ("mixed", "/", 50, [], 0),
    "hello-c1000": ("mixed", "/", 1000, [], 0),
    "close": ("mixed", "/", 50, ["-H", "Connection: close"], 0),
    "flask": ("flaskapp", "/json", 50, [], 0),
    "big-256k": ("mixed", "/big", 50, [], 0),
    "upload-1m": ("mixed", "/upload", 8, ["-s", os.path.join(HERE, "post1m.lua")], 0),
    "hello-slow1000": ("mixed", "/", 50, [], 1000),
}

# Not a wrk workload: how many of 50 keep-alive connections, each sending
# a request as soon as it has the last answer, a server answers at all in
# FAIR_SECS. wrk reports neither a connection that never gets an answer
# nor its wait (its latency counts answered requests only), so a server
# that serves two connections and leaves the rest queued looks fast there.
FAIR = "fair-50"
FAIR_CONNS, FAIR_SECS = 50, 3.0


def berth_config(module):
    path = os.path.join(HERE, ".bench-%s.hcl" % module)
    with open(path, "w") as f:
        f.write(
            'listener "http" {\n  address = "%s"\n}\n'
            'app "bench" {\n  module = "%s:app"\n  python = "%s"\n  chdir = "%s"\n  workers = 2\n'
            '  max_body_bytes = "8MiB"\n}\n'
            "log {\n  access = false\n  level = \"warn\"\n}\n" % (ADDR, module, PY, APPS)
        )
    return path


def servers(module):
    wsgi = module + ".py"
    uw = ["uwsgi", "--plugin", "python3", "--http11-socket", ADDR, "--master", "--processes", "2",
          "--wsgi-file", wsgi, "--callable", "app", "--disable-logging", "--thunder-lock", "--die-on-term",
          "--lazy-apps", "--buffer-size", "32768", "--listen", "1024"]
    return {
        "uwsgi-p2": uw,
        "uwsgi-p2t4": uw + ["--threads", "4"],
        "gunicorn-sync-w4": [PY, "-m", "gunicorn", "-w", "4", "-b", ADDR, "--log-level", "warning", "--backlog", "2048", module + ":app"],
        "gunicorn-gthread-w2t4": [PY, "-m", "gunicorn", "-k", "gthread", "-w", "2", "--threads", "4", "-b", ADDR,
                                  "--log-level", "warning", "--backlog", "2048", module + ":app"],
        "waitress-t4": [PY, "-m", "waitress", "--listen", ADDR, "--threads", "4", "--backlog", "2048", module + ":app"],
        "berth": [os.path.join(HERE, ".berth"), "serve", berth_config(module)],
        "go-ceiling": [os.path.join(HERE, ".ceiling"), "-addr", ADDR],
    }


def wait_port(timeout=20):
    end = time.time() + timeout
    while time.time() < end:
        try:
            with socket.create_connection(("127.0.0.1", PORT), 0.2):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def tree(pid):
    """pid and its descendants."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir("/proc/%d/task" % p):
                with open("/proc/%d/task/%s/children" % (p, task)) as f:
                    todo.extend(int(c) for c in f.read().split())
        except (OSError, ValueError):
            pass
    return out


def tree_rss(pid):
    """Resident memory of pid and its descendants, in bytes."""
    return sum(go_rss(p) for p in tree(pid))


def go_rss(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def wrk(path, secs, conns, extra):
    # One wrk thread for every workload, 1,000 connections too: it drives
    # them all (berth c1000: 73k req/s with -t1, 61k with -t2, whose second
    # thread takes CPU from the server). With two, uWSGI's figure hung on
    # which wrk thread each of the 2 connections it serves sat on (fair-50):
    # 48k to 146k req/s between runs of the same build.
    cmd = ["wrk", "-t1", "-c%d" % conns, "-d%ds" % secs, "--latency"] + extra + ["http://%s%s" % (ADDR, path)]
    out = subprocess.run(cmd, capture_output=True, text=True).stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    rps = float(m.group(1)) if m else 0.0

    def lat(p):
        m = re.search(r"\s%s%%\s+([\d.]+)(us|ms|s)\b" % p, out)
        if not m:
            return float("nan")
        v, u = float(m.group(1)), m.group(2)
        return v / 1000 if u == "us" else v if u == "ms" else v * 1000

    errs = 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        errs += sum(map(int, m.groups()))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        errs += int(m.group(1))
    return rps, lat(50), lat(99), errs


def fair(conns, secs):
    """Per connection, the responses it got in secs (see FAIR)."""
    req = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
    sel = selectors.DefaultSelector()
    counts = {}
    try:
        for _ in range(conns):
            s = socket.create_connection(("127.0.0.1", PORT), 2)
            s.setblocking(False)
            s.send(req)
            counts[s] = 0
            sel.register(s, selectors.EVENT_READ)
        end = time.time() + secs
        while time.time() < end:
            for key, _ in sel.select(0.1):
                s = key.fileobj
                try:
                    data = s.recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                if not data:
                    sel.unregister(s)
                    continue
                n = data.count(b"HTTP/1.1 ")
                counts[s] += n
                if n:
                    s.send(req)
    finally:
        for s in counts:
            s.close()
    return sorted(counts.values())


def run_fair(names, table):
    print("\n## %s: %d keep-alive connections, each sending its next request on its answer, %.0f s (not wrk)" % (FAIR, FAIR_CONNS, FAIR_SECS))
    print("%-24s %9s %12s %12s %12s" % ("server", "served", "min/conn", "median/conn", "max/conn"))
    for n in names:
        p = subprocess.Popen(table[n], cwd=APPS, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            if not wait_port():
                print("%-24s did not start" % n)
                continue
            c = fair(FAIR_CONNS, FAIR_SECS)
            print("%-24s %6d/%-2d %12d %12d %12d" % (n, sum(1 for x in c if x), len(c), c[0], c[len(c) // 2], c[-1]))
        finally:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
            time.sleep(0.5)
        sys.stdout.flush()


def run_one(name, cmd, workload, secs):
    module, path, conns, extra, slow = WORKLOADS[workload]
    p = subprocess.Popen(cmd, cwd=APPS, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    peak = {"rss": 0, "go": 0}
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak["rss"] = max(peak["rss"], tree_rss(p.pid))
            peak["go"] = max(peak["go"], go_rss(p.pid))
            time.sleep(0.2)

    slowproc = None
    try:
        if not wait_port():
            print("  %s did not start" % name, file=sys.stderr)
            return None
        wrk(path, 1, min(conns, 50), extra)  # warm-up
        if slow:
            slowproc = subprocess.Popen([PY, os.path.join(HERE, "slowloris.py"), str(slow), "0.5", str(secs + 4), str(PORT)],
                                        stderr=subprocess.DEVNULL)
            time.sleep(2)
        t = threading.Thread(target=sample)
        t.start()
        res = wrk(path, secs, conns, extra)
        stop.set()
        t.join()
        return res + (peak["rss"], peak["go"])
    finally:
        stop.set()
        if slowproc:
            slowproc.kill()
            slowproc.wait()
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        time.sleep(0.5)


def build():
    """Build berth and the ceiling server beside this file, and say what runs."""
    subprocess.run(["go", "build", "-o", os.path.join(HERE, ".berth"), "./cmd/berth"], cwd=ROOT, check=True)
    subprocess.run(["go", "build", "-o", os.path.join(HERE, ".ceiling"), "./bench/ceiling"], cwd=ROOT, check=True)
    print("machine: %d cores, %s; berth %s" % (os.cpu_count(), os.uname().release,
          subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True).stdout.strip()))


def interleaved(run, names, table, workload, rounds, secs):
    """run(name, cmd, workload, secs) for each server in turn, rounds times,
    so that a shared machine's drift hits all alike; the results by name."""
    res = {n: [] for n in names}
    for _ in range(rounds):
        for n in names:
            r = run(n, table[n], workload, secs)
            if r:
                res[n].append(r)
    return res


# Static files, served beside nginx (not an app's workload): berth's static
# block and nginx with one worker, sendfile on and its default
# open_file_cache (off), serving the same directory over keep-alive
# connections; ratios to nginx, and berth's own RSS ("Go MiB") to show it
# flat on the 1 MiB file. keepalive_requests is raised from nginx's 1,000
# so that it, too, keeps each wrk connection for the whole run.
STATIC = "static"
STATIC_DIR = os.path.join(HERE, ".static")
WORKLOADS.update({
    "static-4k": (STATIC, "/static/4k.bin", 50, [], 0),
    "static-1m": (STATIC, "/static/1m.bin", 50, [], 0),
})
NGINX_STATIC = """user root;
worker_processes 1;
daemon off;
pid %(d)s/nginx.pid;
error_log %(d)s/error.log warn;
events {
    worker_connections 4096;
}
http {
    sendfile on;
    access_log off;
    keepalive_requests 1000000;
    include /etc/nginx/mime.types;
    client_body_temp_path %(d)s/client_body;
    proxy_temp_path %(d)s/proxy;
    fastcgi_temp_path %(d)s/fastcgi;
    uwsgi_temp_path %(d)s/uwsgi;
    scgi_temp_path %(d)s/scgi;
    server {
        listen %(addr)s;
        location /static/ {
            alias %(d)s/files/;
        }
    }
}
"""


def static_servers():
    """nginx and berth serving STATIC_DIR/files under /static (berth with
    the usual 2 workers of an app that gets no request)."""
    files = os.path.join(STATIC_DIR, "files")
    os.makedirs(files, exist_ok=True)
    for name, size in (("4k.bin", 4096), ("1m.bin", 1 << 20)):
        path = os.path.join(files, name)
        if not os.path.exists(path) or os.path.getsize(path) != size:
            with open(path, "wb") as f:
                f.write(os.urandom(size))
    conf = os.path.join(STATIC_DIR, "nginx.conf")
    with open(conf, "w") as f:
        f.write(NGINX_STATIC % {"d": STATIC_DIR, "addr": ADDR})
    hcl = os.path.join(STATIC_DIR, "berth.hcl")
    with open(hcl, "w") as f:
        f.write('listener "http" {\n  address = "%s"\n}\napp "bench" {\n  module = "mixed:app"\n  python = "%s"\n'
                '  chdir = "%s"\n  workers = 2\n  static "/static" {\n    dir = "%s"\n  }\n}\n'
                'log {\n  access = false\n  level = "warn"\n}\n' % (ADDR, PY, APPS, files))
    return {
        "nginx": ["nginx", "-p", STATIC_DIR, "-e", os.path.join(STATIC_DIR, "error.log"), "-c", conf],
        "berth": [os.path.join(HERE, ".berth"), "serve", hcl],
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workloads", default=",".join(list(WORKLOADS) + [FAIR]))
    ap.add_argument("--servers", default="")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--secs", type=int, default=6)
    ap.add_argument("--config", metavar="MODULE", help="write berth's config for an app in bench/apps, print its path, and exit")
    a = ap.parse_args()
    if a.config:
        print(berth_config(a.config))
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    build()
    for workload in a.workloads.split(","):
        if workload == FAIR:
            table = servers("mixed")
            run_fair([n for n in table if not a.servers or n in a.servers.split(",")], table)
            continue
        module = WORKLOADS[workload][0]
        table = static_servers() if module == STATIC else servers(module)
        names = [n for n in table if not a.servers or n in a.servers.split(",")]
        res = interleaved(run_one, names, table, workload, a.rounds, a.secs)
        _, path, conns, extra, slow = WORKLOADS[workload]
        print("\n## %s: %s, %d connections%s%s, %d round(s) of %d s" % (
            workload, path, conns, " " + " ".join(extra) if extra and "-s" not in extra else "",
            ", %d slow clients" % slow if slow else "", a.rounds, a.secs))
        print("%-24s %9s %8s %8s %7s %9s %9s %6s" % ("server", "req/s", "p50 ms", "p99 ms", "errors", "RSS MiB", "Go MiB", "ratio"))
        ref = "nginx" if module == STATIC else "uwsgi-p2"
        base = statistics.median(x[0] for x in res[ref]) if res.get(ref) else None
        for n in names:
            if not res[n]:
                print("%-24s did not run" % n)
                continue
            rps = statistics.median(x[0] for x in res[n])
            p50 = statistics.median(x[1] for x in res[n])
            p99 = statistics.median(x[2] for x in res[n])
            errs = sum(x[3] for x in res[n])
            rss = max(x[4] for x in res[n]) / (1 << 20)
            gomem = "%9.1f" % (max(x[5] for x in res[n]) / (1 << 20)) if n in ("berth", "go-ceiling") else "%9s" % "-"
            ratio = "%6.2f" % (rps / base) if base else "%6s" % "-"
            print("%-24s %9.0f %8.2f %8.2f %7d %9.1f %s %s" % (n, rps, p50, p99, errs, rss, gomem, ratio))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
