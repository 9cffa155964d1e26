#!/bin/bash
# Compare berth builds on one workload: bench/ab.sh MODULE PATH CONNS ROUNDS BINARY...
#
#   go build -o /tmp/berth-a ./cmd/berth   # before the change
#   go build -o /tmp/berth-b ./cmd/berth   # after it
#   bench/ab.sh mixed / 50 4 /tmp/berth-a /tmp/berth-b
#
# The builds take turns, a fresh server per round (each after a 1 s
# warm-up), so that the drift of a shared machine hits all alike. Each
# line gives req/s, p50 and p99 from wrk, and the CPU berth's own process
# and its workers spent per request (from /proc over the run), which
# varies less than req/s. MODULE is an app in bench/apps (mixed, flaskapp);
# WRK_THREADS (default 1, as bench.py) and WRK_ARGS (e.g. "-s bench/post1m.lua") pass
# on to wrk. Needs wrk and /usr/bin/python3 with the apps' packages.
set -eu
if [ $# -lt 5 ]; then
	sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
fi
module=$1 path=$2 conns=$3 rounds=$4
shift 4
here=$(cd "$(dirname "$0")" && pwd)
addr=127.0.0.1:18000 # bench.py's
cfg=$(python3 "$here/bench.py" --config "$module") # the config bench.py runs berth with
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
worker_ticks() {
	local sum=0 p
	for p in $(pgrep -P "$1"); do sum=$((sum + $(ticks "$p"))); done
	echo $sum
}
hz=$(getconf CLK_TCK)
for _ in $(seq "$rounds"); do
	for bin in "$@"; do
		# A session of its own, as bench.py and systemd start it: with
		# autogroups on, a session is a scheduling group, and sharing
		# wrk's changes results (SCHED_BATCH workers: +16-40% there, noise
		# here).
		setsid "$bin" serve "$cfg" >/dev/null 2>&1 &
		pid=$!
		for _ in $(seq 50); do curl -so /dev/null "http://$addr$path" && break; sleep 0.2; done
		if ! kill -0 $pid 2>/dev/null; then
			echo "$(basename "$bin"): did not start (is something else on $addr?)" >&2
			continue
		fi
		wrk -t"${WRK_THREADS:-1}" -c"$conns" -d1s ${WRK_ARGS:-} "http://$addr$path" >/dev/null
		g0=$(ticks $pid) w0=$(worker_ticks $pid)
		out=$(wrk -t"${WRK_THREADS:-1}" -c"$conns" -d4s --latency ${WRK_ARGS:-} "http://$addr$path")
		g1=$(ticks $pid) w1=$(worker_ticks $pid)
		kill $pid
		wait $pid 2>/dev/null || true
		n=$(echo "$out" | awk '/requests in/ {print $1}')
		if [ -z "$n" ] || [ "$n" -eq 0 ]; then
			echo "$(basename "$bin"): wrk served nothing" >&2
			continue
		fi
		echo "$out" | awk -v bin="$(basename "$bin")" -v go=$(((g1 - g0) * 1000000 / hz / n)) -v py=$(((w1 - w0) * 1000000 / hz / n)) '
			/Requests\/sec/ {rps = $2} / 50%/ {p50 = $2} / 99%/ {p99 = $2}
			END {printf "%-16s %9s req/s  p50 %-8s p99 %-8s berth %3d us/req  workers %3d us/req\n", bin, rps, p50, p99, go, py}'
	done
done
