package front

import (
	"os"
	"testing"

	"github.com/berthd/berth/supervisor"
)

// TestResponseRoute: which way an answer's body goes to the client, by
// what the worker sent.
func TestResponseRoute(t *testing.T) {
	names := map[respRoute]string{respInFrame: "frame", respRing: "ring", respStream: "stream", respFile: "file"}
	file := supervisor.Part{File: os.Stdin, Count: -1}
	for _, c := range []struct {
		name          string
		more, inRing  bool
		bodyLen       int
		first         supervisor.Part
		contentLength int
		want          respRoute
	}{
		{name: "empty", want: respInFrame, contentLength: -1},
		{name: "small", bodyLen: 5, contentLength: 5, want: respInFrame},
		{name: "no Content-Length", bodyLen: 5, contentLength: -1, want: respInFrame},
		{name: "past its Content-Length", bodyLen: 5, contentLength: 3, want: respInFrame},
		{name: "short of its Content-Length", bodyLen: 5, contentLength: 6, want: respStream},
		{name: "1 MiB", bodyLen: 1 << 20, contentLength: -1, want: respInFrame},
		{name: "over 1 MiB", bodyLen: 1<<20 + 1, contentLength: -1, want: respStream},
		{name: "in the ring", inRing: true, bodyLen: 64 << 10, contentLength: 64 << 10, want: respRing},
		{name: "in the ring, short", inRing: true, bodyLen: 64 << 10, contentLength: 64<<10 + 1, want: respStream},
		{name: "frames follow", more: true, bodyLen: 5, contentLength: -1, want: respStream},
		{name: "a first frame", first: supervisor.Part{Data: []byte("x")}, contentLength: -1, want: respStream},
		{name: "a file", first: file, contentLength: -1, want: respFile},
		{name: "a file, then frames", more: true, first: file, contentLength: 10, want: respFile},
	} {
		if got := responseRoute(c.more, c.inRing, c.bodyLen, c.first, c.contentLength); got != c.want {
			t.Errorf("%s: route %s, want %s", c.name, names[got], names[c.want])
		}
	}
}
