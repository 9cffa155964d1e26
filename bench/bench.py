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
nginx-hello and nginx-flask put one nginx worker between wrk and the
server, which nginx reaches over a Unix socket the way each server's docs
say (see NGINX_DIR); their -defaults rows use nginx's proxy defaults.
Needs Debian's wrk gunicorn uwsgi uwsgi-plugin-python3 python3-waitress
python3-flask nginx. BENCH_PORT moves the port wrk talks to (18000);
BENCH_BERTH_BEFORE=BINARY adds a berth-before row run by another berth
build (an earlier commit's), for a before/after within one run.
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

# name: (app module, path, wrk connections, extra wrk args, slow clients:
# a number of slowloris connections, or ("read", N) for N readers that
# take a 10 MiB answer 16 bytes at a time)
WORKLOADS = {
    "hello": ("mixed", "/", 50, [], 0),
    "hello-c1000": ("mixed", "/", 1000, [], 0),
    "close": ("mixed", "/", 50, ["-H", "Connection: close"], 0),
    "flask": ("flaskapp", "/json", 50, [], 0),
    "big-256k": ("mixed", "/big", 50, [], 0),
    "upload-1m": ("mixed", "/upload", 8, ["-s", os.path.join(HERE, "post1m.lua")], 0),
    "hello-slow1000": ("mixed", "/", 50, [], 1000),
    "hello-slowread200": ("mixed", "/", 50, [], ("read", 200)),
    # Behind nginx (see NGINX): wrk talks to nginx on ADDR, nginx to
    # each server over a Unix socket.
    "nginx-hello": ("mixed", "/", 50, [], 0),
    "nginx-flask": ("flaskapp", "/json", 50, [], 0),
}

# Not a wrk workload: how many of 50 keep-alive connections, each sending
# a request as soon as it has the last answer, a server answers at all in
# FAIR_SECS. wrk reports neither a connection that never gets an answer
# nor its wait (its latency counts answered requests only), so a server
# that serves two connections and leaves the rest queued looks fast there.
FAIR = "fair-50"
FAIR_CONNS, FAIR_SECS = 50, 3.0


def berth_config(module, addr=ADDR, tag=""):
    path = os.path.join(HERE, ".bench-%s%s.hcl" % (module, tag))
    with open(path, "w") as f:
        f.write(
            'listener "http" {\n  address = "%s"\n}\n'
            'app "bench" {\n  module = "%s:app"\n  python = "%s"\n  chdir = "%s"\n  workers = 2\n'
            '  max_body_bytes = "8MiB"\n}\n'
            "log {\n  access = false\n  level = \"warn\"\n}\n" % (addr, module, PY, APPS)
        )
    return path


def servers(module, workload=""):
    if workload.startswith("nginx-"):
        return nginx_servers(module)
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
        # BENCH_BERTH_BEFORE=BINARY: another berth build (an earlier
        # commit's) beside this one, for a before/after in one run.
        "berth-before": [os.environ.get("BENCH_BERTH_BEFORE", "false"), "serve", berth_config(module)],
        "go-ceiling": [os.path.join(HERE, ".ceiling"), "-addr", ADDR],
    }


# Behind nginx: one nginx worker process (as a small site runs it), HTTP/1.1
# keep-alive from wrk to nginx on ADDR, and from nginx to each server over
# a Unix socket the way that server's docs say: uWSGI by its own protocol
# (uwsgi_pass, /etc/nginx/uwsgi_params), Gunicorn by proxy_pass as its
# deploy docs show, berth by the server block `berth nginx` writes
# (upstream keep-alive). "-defaults" rows: a plain proxy_pass with
# nginx's defaults, HTTP/1.0 and a new connection per request. nginx runs
# as a process of the bench's own (daemon off, its files in NGINX_DIR),
# as root so that its worker can open every server's socket.
NGINX_DIR = os.path.join(HERE, ".nginx")
NGINX_SOCK = os.path.join(NGINX_DIR, "app.sock")
NGINX_KEEPALIVE = int(os.environ.get("BENCH_NGINX_KEEPALIVE", "256"))  # as berth nginx writes
PROXY_HEADERS = """
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;"""
NGINX_UWSGI = """
        location / {
            include /etc/nginx/uwsgi_params;
            uwsgi_pass unix:%(sock)s;
        }"""
NGINX_GUNICORN = """
        location / {
            proxy_pass http://unix:%(sock)s;""" + PROXY_HEADERS + """
        }"""
NGINX_BERTH = """
    upstream berth_app {
        server unix:%(sock)s;
        keepalive %(keepalive)d;
    }
    server {
        listen %(addr)s;
        location / {
            proxy_pass http://berth_app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";""" + PROXY_HEADERS + """
            client_max_body_size 16m;
            proxy_read_timeout 30s;
        }
    }"""
NGINX_DEFAULTS = """
        location / {
            proxy_pass http://unix:%(sock)s;
        }"""


class Behind(list):
    """A server's command, run behind nginx with conf (its server block,
    or a location in a plain one) in nginx.conf's http block."""

    def __init__(self, cmd, conf):
        super().__init__(cmd)
        self.conf = conf


def nginx_conf(conf):
    d = NGINX_DIR
    if "server {" not in conf:
        conf = "\n    server {\n        listen %(addr)s;" + conf + "\n    }"
    conf = conf % {"sock": NGINX_SOCK, "addr": ADDR, "keepalive": NGINX_KEEPALIVE}
    path = os.path.join(d, "nginx.conf")
    with open(path, "w") as f:
        f.write("""user root;
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
    client_body_temp_path %(d)s/client_body;
    proxy_temp_path %(d)s/proxy;
    fastcgi_temp_path %(d)s/fastcgi;
    uwsgi_temp_path %(d)s/uwsgi;
    scgi_temp_path %(d)s/scgi;
%(conf)s
}
""" % {"d": d, "conf": conf})
    return path


def nginx_servers(module):
    os.makedirs(NGINX_DIR, exist_ok=True)
    wsgi = module + ".py"
    uw = ["uwsgi", "--plugin", "python3", "--socket", NGINX_SOCK, "--master", "--processes", "2",
          "--wsgi-file", wsgi, "--callable", "app", "--disable-logging", "--thunder-lock", "--die-on-term",
          "--lazy-apps", "--buffer-size", "32768", "--listen", "1024"]
    gs = [PY, "-m", "gunicorn", "-w", "4", "-b", "unix:" + NGINX_SOCK, "--log-level", "warning", "--backlog", "2048", module + ":app"]
    be = [os.path.join(HERE, ".berth"), "serve", berth_config(module, "unix:" + NGINX_SOCK, "-nginx")]
    before = os.environ.get("BENCH_BERTH_BEFORE")
    extra = {"berth-before": Behind([before] + be[1:], NGINX_BERTH)} if before else {}
    return {
        **extra,
        "uwsgi-p2": Behind(uw, NGINX_UWSGI),
        "gunicorn-sync-w4": Behind(gs, NGINX_GUNICORN),
        "berth": Behind(be, NGINX_BERTH),
        "gunicorn-sync-w4-defaults": Behind(gs, NGINX_DEFAULTS),
        "berth-defaults": Behind(be, NGINX_DEFAULTS),
    }


def wait_unix(path, timeout=20):
    end = time.time() + timeout
    while time.time() < end:
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(0.2)
                s.connect(path)
                return True
        except OSError:
            time.sleep(0.05)
    return False


def wait_ok(path, timeout=20):
    """Until a GET of path on ADDR answers 200 (through nginx, the
    server behind it is then serving)."""
    end = time.time() + timeout
    req = ("GET %s HTTP/1.0\r\nHost: bench\r\n\r\n" % path).encode()
    while time.time() < end:
        try:
            with socket.create_connection(("127.0.0.1", PORT), 1) as s:
                s.sendall(req)
                if s.recv(64).startswith(b"HTTP/1.1 200"):
                    return True
        except OSError:
            pass
        time.sleep(0.1)
    return False


class Started:
    """A server started as cmd says (behind nginx for a Behind), for a
    with block: .proc is the server's process, .nginx nginx's or None,
    .ok whether both serve path. Both are killed, by their own process
    groups, on leaving the block."""

    def __init__(self, cmd, path):
        self.cmd, self.path, self.proc, self.nginx, self.ok = cmd, path, None, None, False

    def __enter__(self):
        conf = getattr(self.cmd, "conf", None)
        if conf is not None:
            try:
                os.unlink(NGINX_SOCK)
            except FileNotFoundError:
                pass
        self.proc = subprocess.Popen(list(self.cmd), cwd=APPS, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        if conf is None:
            self.ok = wait_port()
            return self
        if not wait_unix(NGINX_SOCK):
            return self
        self.nginx = subprocess.Popen(["nginx", "-p", NGINX_DIR, "-e", os.path.join(NGINX_DIR, "error.log"),
                                       "-c", nginx_conf(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                      start_new_session=True)
        self.ok = wait_port() and wait_ok(self.path)
        return self

    def __exit__(self, *exc):
        for p in (self.nginx, self.proc):
            if p:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        time.sleep(0.5)


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
    with Started(cmd, path) as st:
        return measure_one(name, st, path, conns, extra, slow, secs)


def measure_one(name, st, path, conns, extra, slow, secs):
    p = st.proc
    peak = {"rss": 0, "go": 0}
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak["rss"] = max(peak["rss"], tree_rss(p.pid))
            peak["go"] = max(peak["go"], go_rss(p.pid))
            time.sleep(0.2)

    slowproc = None
    try:
        if not st.ok:
            print("  %s did not start" % name, file=sys.stderr)
            return None
        wrk(path, 1, min(conns, 50), extra)  # warm-up
        if isinstance(slow, tuple):
            slowproc = subprocess.Popen([PY, os.path.join(HERE, "slowreader.py"), str(slow[1]), "0.1", str(secs + 12), str(PORT), "/stream10m"],
                                        stderr=subprocess.DEVNULL)
            time.sleep(10)  # until the workers have made every answer
        elif slow:
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
    # A kill (SIGTERM) ends the run through the finally blocks, which
    # stop the servers (and nginx) started so far.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    build()
    for workload in a.workloads.split(","):
        if workload == FAIR:
            table = servers("mixed")
            run_fair([n for n in table if not a.servers or n in a.servers.split(",")], table)
            continue
        module = WORKLOADS[workload][0]
        table = static_servers() if module == STATIC else servers(module, workload)
        names = [n for n in table if not a.servers or n in a.servers.split(",")]
        res = interleaved(run_one, names, table, workload, a.rounds, a.secs)
        _, path, conns, extra, slow = WORKLOADS[workload]
        print("\n## %s: %s, %d connections%s%s%s, %d round(s) of %d s" % (
            workload, path, conns, " " + " ".join(extra) if extra and "-s" not in extra else "",
            (", %d slow readers of 10 MiB" % slow[1] if isinstance(slow, tuple) else ", %d slow clients" % slow) if slow else "",
            ", through nginx (1 worker) to a Unix socket; -defaults: nginx's proxy defaults" if workload.startswith("nginx-") else "",
            a.rounds, a.secs))
        print("%-26s %9s %8s %8s %7s %9s %9s %6s" % ("server", "req/s", "p50 ms", "p99 ms", "errors", "RSS MiB", "Go MiB", "ratio"))
        ref = "nginx" if module == STATIC else "uwsgi-p2"
        base = statistics.median(x[0] for x in res[ref]) if res.get(ref) else None
        for n in names:
            if not res[n]:
                print("%-26s did not run" % n)
                continue
            rps = statistics.median(x[0] for x in res[n])
            p50 = statistics.median(x[1] for x in res[n])
            p99 = statistics.median(x[2] for x in res[n])
            errs = sum(x[3] for x in res[n])
            rss = max(x[4] for x in res[n]) / (1 << 20)
            gomem = "%9.1f" % (max(x[5] for x in res[n]) / (1 << 20)) if n.startswith(("berth", "go-ceiling")) else "%9s" % "-"
            ratio = "%6.2f" % (rps / base) if base else "%6s" % "-"
            print("%-26s %9.0f %8.2f %8.2f %7d %9.1f %s %s" % (n, rps, p50, p99, errs, rss, gomem, ratio))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
