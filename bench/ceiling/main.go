// Command ceiling answers the benchmark's requests without Python: the
// limit a Go front on this machine can approach. Only for bench/.
package main

import (
	"bytes"
	"flag"
	"log"

	"github.com/valyala/fasthttp"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:18000", "listen address")
	flag.Parse()
	big := bytes.Repeat([]byte("x"), 256*1024)
	h := func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("text/plain")
		switch string(ctx.Path()) {
		case "/big":
			// Without a copy, as berth sends a body from a worker's out
			// ring: SetBody's copy of 256 KiB per response held this
			// ceiling to 0.9-1.0x of uWSGI, which read as if wrk capped it.
			ctx.Response.SetBodyRaw(big)
		case "/json":
			ctx.SetContentType("application/json")
			ctx.SetBodyString(`{"items":[0,1,2,3,4,5,6,7,8,9],"message":"Hello, World!","n":42}`)
		case "/upload", "/echo":
			ctx.SetBodyString(`{"len":` + itoa(len(ctx.PostBody())) + `}`)
		default:
			ctx.SetBodyString("Hello, World!")
		}
	}
	s := &fasthttp.Server{Handler: h, MaxRequestBodySize: 8 << 20}
	log.Fatal(s.ListenAndServe(*addr))
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}
