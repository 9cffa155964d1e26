package wire

import "encoding/binary"

// RequestEncoder builds request frames. It is reused across requests, so
// encoding allocates nothing once its buffer has grown to fit.
type RequestEncoder struct {
	buf   []byte
	pairs int
}

const requestPrefix = HeaderSize + 4

// Reset starts a new request frame.
func (e *RequestEncoder) Reset() {
	if cap(e.buf) < requestPrefix {
		// Small to start: an encoder lives in each request in flight, and
		// at 1,000 connections 4 KiB each was 4 MiB of berth's RSS (bench/
		// hello-c1000: 51.5 -> 47.5 MiB). A request with more headers grows
		// it once, and the pooled encoder keeps the size.
		e.buf = make([]byte, requestPrefix, 1024)
	}
	e.buf = e.buf[:requestPrefix]
	e.pairs = 0
}

// Add appends one environ entry. Neither key nor value may contain NUL;
// the caller guarantees it (request parsing rejects NUL in headers and in
// the decoded path).
func (e *RequestEncoder) Add(key string, value []byte) { addPair(e, key, value) }

// AddKey is Add for a key held as bytes.
func (e *RequestEncoder) AddKey(key, value []byte) { addPair(e, key, value) }

// AddString is Add for a string value.
func (e *RequestEncoder) AddString(key, value string) { addPair(e, key, value) }

func addPair[K, V string | []byte](e *RequestEncoder, key K, value V) {
	if e.pairs > 0 {
		e.buf = append(e.buf, 0)
	}
	e.buf = append(e.buf, key...)
	e.buf = append(e.buf, 0)
	e.buf = append(e.buf, value...)
	e.pairs++
}

// AppendValue extends the value of the last entry added, which lets a
// caller join repeated headers without building the joined value first.
func (e *RequestEncoder) AppendValue(sep string, value []byte) {
	e.buf = append(e.buf, sep...)
	e.buf = append(e.buf, value...)
}

// Finish completes the frame for a body of bodyLen bytes, which the caller
// sends right after the returned bytes (in the same writev). The result is
// valid until the next Reset.
func (e *RequestEncoder) Finish(bodyLen int) []byte {
	return e.finish(0, bodyLen)
}

// FinishWithFile completes the frame for a body that travels as a file
// descriptor sent with the frame (see WriteWithFile).
func (e *RequestEncoder) FinishWithFile() []byte {
	return e.finish(FlagBodyFD, 0)
}

// FinishWithShared completes the frame for a body in shared memory whose
// descriptor is sent with the frame (FlagBodyShared).
func (e *RequestEncoder) FinishWithShared() []byte {
	return e.finish(FlagBodyFD|FlagBodyShared, 0)
}

// FinishWithSocket completes the frame for a body whose first bytes
// (prefix bytes, sent right after the frame as Finish's) are in the frame
// and whose rest waits in the client's socket, whose descriptor is sent
// with the frame (FlagBodySocket).
func (e *RequestEncoder) FinishWithSocket(prefix int) []byte {
	return e.finish(FlagBodySocket, prefix)
}

func (e *RequestEncoder) finish(flags uint8, bodyLen int) []byte {
	meta := len(e.buf) - requestPrefix
	PutHeader(e.buf, TypeRequest, flags, 4+meta+bodyLen)
	binary.LittleEndian.PutUint32(e.buf[HeaderSize:], uint32(meta))
	return e.buf
}

// DecodeRequest splits a request payload into its environ pairs and body.
// berth itself never needs it (Python decodes requests); it exists for
// tests and fuzzing of the format.
func DecodeRequest(p []byte) (env [][2]string, body []byte, ok bool) {
	if len(p) < 4 {
		return nil, nil, false
	}
	n := binary.LittleEndian.Uint32(p)
	if uint64(n) > uint64(len(p)-4) {
		return nil, nil, false
	}
	meta, body := p[4:4+n], p[4+n:]
	if len(meta) == 0 {
		return nil, body, true
	}
	parts := splitNUL(meta, len(meta)+1)
	if len(parts)%2 != 0 {
		return nil, nil, false
	}
	for i := 0; i < len(parts); i += 2 {
		env = append(env, [2]string{string(parts[i]), string(parts[i+1])})
	}
	return env, body, true
}
