#!/usr/bin/env bash
# Reload under load, berth beside its peers: wrk with 50 connections for
# 14 s while the server is reloaded every 2 s (6 reloads: SIGHUP for the
# peers, `berth reload` for berth). Prints req/s and every error wrk saw.
# Needs Debian's wrk gunicorn uwsgi uwsgi-plugin-python3; run from anywhere.
set -u
here=$(cd "$(dirname "$0")" && pwd)
apps=$here/apps
port=18000
go build -o "$here/.berth" "$here/../cmd/berth" || exit 1
cat > "$here/.reload.hcl" <<HCL
listener "http" {
  address = "127.0.0.1:$port"
}
app "mixed" {
  module  = "mixed:app"
  python  = "/usr/bin/python3"
  chdir   = "$apps"
  workers = 2
}
HCL

run() {
  local name=$1 reload=$2; shift 2
  "$@" >/dev/null 2>&1 & local pid=$!
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
  wrk -t1 -c50 -d14s "http://127.0.0.1:$port/" > "/tmp/reload-$name.out" 2>&1 & local w=$!
  for _ in 1 2 3 4 5 6; do
    sleep 2
    if [ "$reload" = berth ]; then "$here/.berth" reload "$here/.reload.hcl" >/dev/null || echo "$name: reload failed"; else kill -HUP $pid; fi
  done
  wait $w; kill -TERM $pid; sleep 1; kill -KILL $pid 2>/dev/null; wait $pid 2>/dev/null
  echo "$name: $(grep -E 'Requests/sec' "/tmp/reload-$name.out" | tr -s ' ') | errors: $(grep -E 'Socket errors|Non-2xx' "/tmp/reload-$name.out" | tr -s ' ' | tr '\n' ' ')"
}
cd "$apps"
run berth berth "$here/.berth" serve --log-level warn "$here/.reload.hcl"
run gunicorn-gthread-w2t4 hup /usr/bin/python3 -m gunicorn -k gthread -w 2 --threads 4 -b 127.0.0.1:$port --log-level warning mixed:app
run uwsgi-http11-p2-lazy hup uwsgi --plugin python3 --http11-socket 127.0.0.1:$port --master --processes 2 --wsgi-file mixed.py --callable app --disable-logging --lazy-apps --die-on-term
