"""threads = 4: wsgi.multithread, overlapping requests, and the app's own
thread started at import.

/env answers wsgi.multithread and wsgi.multiprocess; /slow sleeps 2 s and
answers when it ran (time.monotonic, one clock for the whole process) and
on which thread; /ticker answers how often the app's background thread has
ticked, and whether it is alive. (2 s: four requests sent at once must all
start before the first ends, and beside other tests they may reach the
worker a few hundred milliseconds apart.)
"""
import threading
import time

from _probe import respond, validated

TICKS = 0


def _tick():
    global TICKS
    while True:
        TICKS += 1
        time.sleep(0.02)


TICKER = threading.Thread(target=_tick, name="pep3333-ticker", daemon=True)
TICKER.start()


def _app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/env":
        return respond(start_response, {
            "multithread": environ["wsgi.multithread"],
            "multiprocess": environ["wsgi.multiprocess"],
        })
    if path == "/slow":
        start = time.monotonic()
        time.sleep(2)
        return respond(start_response, {
            "start": start,
            "end": time.monotonic(),
            "thread": threading.get_ident(),
        })
    return respond(start_response, {"ticks": TICKS, "alive": TICKER.is_alive()})


app = validated(_app)
