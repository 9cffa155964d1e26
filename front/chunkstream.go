package front

import (
	"bufio"
	"fmt"
	"io"
	"reflect"
	"strings"
	"unsafe"

	"github.com/valyala/fasthttp"
)

// fasthttp hands a streamed request body over as an io.Reader that, for
// a chunked body, parses the chunk framing itself (leniently: see
// chunkedReader) from the connection's *bufio.Reader, which it does not
// export. berth reads that reader from the stream's "reader" field and,
// once its own decoder has read the body to its end, sets the stream's
// "eof" field, so that fasthttp neither parses the body again when it
// drains what a handler left unread nor takes the next pipelined request
// for more body. Both fields are found by name and type when the package
// loads (streamFields), and checked by decoding a request through them:
// a fasthttp that changed them stops berth at start-up (and fails every
// test), never serves with fasthttp's chunk parser behind berth's back.
type streamFields struct {
	typ    reflect.Type // *fasthttp.requestStream
	reader uintptr      // offset of its *bufio.Reader
	eof    uintptr      // offset of its end-of-body flag
}

var chunkStream = mustFindStreamFields()

// mustFindStreamFields finds fasthttp's stream fields and proves them on
// a chunked request read from memory, or panics saying what changed.
func mustFindStreamFields() streamFields {
	f, err := findStreamFields()
	if err != nil {
		panic(fmt.Sprintf("front: fasthttp's request body stream is not as berth reads it (front/chunkstream.go): %v", err))
	}
	return f
}

func findStreamFields() (streamFields, error) {
	const next = "GET /next HTTP/1.1\r\n\r\n"
	br := bufio.NewReader(strings.NewReader("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
		"5 ;a=b\r\nhello\r\n0\r\n\r\n" + next))
	var req fasthttp.Request
	if err := req.Header.Read(br); err != nil {
		return streamFields{}, err
	}
	if err := req.ContinueReadBodyStream(br, 1<<20); err != nil {
		return streamFields{}, err
	}
	stream := req.BodyStream()
	t := reflect.TypeOf(stream)
	if t == nil || t.Kind() != reflect.Pointer || t.Elem().Kind() != reflect.Struct {
		return streamFields{}, fmt.Errorf("the body stream is a %v", t)
	}
	r, ok := t.Elem().FieldByName("reader")
	if !ok || r.Type != reflect.TypeFor[*bufio.Reader]() {
		return streamFields{}, fmt.Errorf("%v has no reader *bufio.Reader field", t)
	}
	e, ok := t.Elem().FieldByName("eof")
	if !ok || e.Type != reflect.TypeFor[bool]() {
		return streamFields{}, fmt.Errorf("%v has no eof bool field", t)
	}
	f := streamFields{typ: t, reader: r.Offset, eof: e.Offset}
	cr, end := f.decoder(stream)
	if cr == nil || cr.br != br {
		return streamFields{}, fmt.Errorf("%v's reader is not the connection's", t)
	}
	body, err := io.ReadAll(cr)
	if err != nil || string(body) != "hello" {
		return streamFields{}, fmt.Errorf("decoding through it gave %q, %v", body, err)
	}
	end()
	if n, err := stream.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		return streamFields{}, fmt.Errorf("%v does not end when its eof is set (%d, %v)", t, n, err)
	}
	if rest, _ := io.ReadAll(br); string(rest) != next {
		return streamFields{}, fmt.Errorf("after the body the reader holds %q", rest)
	}
	return f, nil
}

// decoder returns berth's decoder of the chunked body fasthttp's stream
// would read, and end, to call once the decoder has read the body to its
// end; nil when stream is not fasthttp's stream.
func (f streamFields) decoder(stream io.Reader) (*chunkedReader, func()) {
	if reflect.TypeOf(stream) != f.typ {
		return nil, nil
	}
	base := reflect.ValueOf(stream).UnsafePointer()
	br := *(**bufio.Reader)(unsafe.Add(base, f.reader))
	return newChunkedReader(br), func() { *(*bool)(unsafe.Add(base, f.eof)) = true }
}
