"""flaskapp's routes, timed from inside the server's worker.

What Flask costs where it really runs, beside berth's parts and wrk on the
same cores, rather than in bench/appcost.py's hot loop: each call's thread
CPU time (the app called, its body joined, close() called) is summed, and
every 20,000 calls the mean in microseconds is appended to
/tmp/flasktimed.PID. Two clock reads a call add about 0.4 us.

    cfg=$(python3 bench/bench.py --config flasktimed)
    berth serve "$cfg" &  wrk -t1 -c50 -d8s http://127.0.0.1:18000/json
    cat /tmp/flasktimed.*
"""
import os
import time

from flaskapp import app as flask_app

_calls = 0
_ns = 0


def app(environ, start_response):
    global _calls, _ns
    t = time.thread_time_ns()
    result = flask_app(environ, start_response)
    try:
        body = b"".join(result)
    finally:
        result.close()
    _ns += time.thread_time_ns() - t
    _calls += 1
    if _calls == 20000:
        with open("/tmp/flasktimed.%d" % os.getpid(), "a") as f:
            f.write("%.1f\n" % (_ns / _calls / 1000))
        _calls = _ns = 0
    return [body]
