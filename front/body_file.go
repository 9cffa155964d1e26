package front

import (
	"io"
	"os"

	"github.com/valyala/fasthttp"
	"golang.org/x/sys/unix"

	"github.com/berthd/berth/supervisor"
	"github.com/berthd/berth/wire"
)

// fileRoute is a body spilled to an unlinked temp file: one over
// buffer_body_bytes, or a chunked body that grew past it. Its descriptor
// rides with the frame (wire.FlagBodyFD) and the app reads it through
// wsgi.input, so a 1 GiB upload costs no 1 GiB of memory anywhere.
type fileRoute struct {
	file *os.File
	n    int64
}

// fill spills head, then r, to a new temp file (want bytes, or to r's
// end when want < 0, at most rt.maxBody).
func (f *fileRoute) fill(r io.Reader, head []byte, want int64, rt *route) (bodyRoute, int, string) {
	file, err := tempFile()
	if err != nil {
		return nil, fasthttp.StatusInternalServerError, "cannot store the request body: " + err.Error()
	}
	f.file = file
	if status, msg := f.spill(r, head, want, rt); status != 0 {
		f.release(false)
		return nil, status, msg
	}
	return f, 0, ""
}

func (f *fileRoute) kind() bodyKind        { return bodyFile }
func (f *fileRoute) length() int64         { return f.n }
func (f *fileRoute) inFrame() []byte       { return nil }
func (f *fileRoute) settle(io.Reader) bool { return true }

func (f *fileRoute) request(enc *wire.RequestEncoder) supervisor.Request {
	return supervisor.Request{Frame: enc.FinishWithFile(), BodyFile: f.file}
}

// release closes berth's descriptor; the worker closes its own after the
// request.
func (f *fileRoute) release(bool) {
	f.file.Close()
	f.file = nil
}

// spill writes head, then r to its end (want bytes, or any number when
// want < 0, at most rt.maxBody) to the body's file.
func (f *fileRoute) spill(r io.Reader, head []byte, want int64, rt *route) (int, string) {
	if _, err := f.file.Write(head); err != nil {
		return fasthttp.StatusInternalServerError, "cannot store the request body: " + err.Error()
	}
	f.n = int64(len(head))
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	for want < 0 || f.n < want {
		p := buf
		if want >= 0 && int64(len(p)) > want-f.n {
			p = p[:want-f.n]
		}
		n, err := r.Read(p)
		if n > 0 {
			if f.n+int64(n) > rt.maxBody {
				return fasthttp.StatusRequestEntityTooLarge, rt.tooLarge
			}
			if _, werr := f.file.Write(p[:n]); werr != nil {
				return fasthttp.StatusInternalServerError, "cannot store the request body: " + werr.Error()
			}
			f.n += int64(n)
		}
		if err == io.EOF && (want < 0 || f.n == want) {
			return 0, ""
		}
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return readError(err)
		}
	}
	return 0, ""
}

// tempFile returns a new file with no name in $TMPDIR (default /tmp):
// nothing is left behind whatever happens to berth. Where the file system
// cannot make a nameless file, it makes a named one and unlinks it.
func tempFile() (*os.File, error) {
	dir := os.TempDir()
	fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err == nil {
		return os.NewFile(uintptr(fd), "request-body"), nil
	}
	f, err := os.CreateTemp(dir, "berth-body-")
	if err != nil {
		return nil, err
	}
	os.Remove(f.Name())
	return f, nil
}
