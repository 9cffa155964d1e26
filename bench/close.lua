-- A new connection per request, for bench/ab.sh: WRK_ARGS="-s bench/close.lua"
wrk.headers["Connection"] = "close"
