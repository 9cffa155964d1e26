package front

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/berthd/berth/supervisor"
)

// The file route of a response (respFile): a regular file the app
// returned through wsgi.file_wrapper comes as a descriptor (wire.TypeFile)
// and goes to the client with sendfile, from the page cache, no byte of
// it in user space. The stream sends it, releasing the worker first when
// the file ends the body (stream.take).

// sendFile sends a file part with sendfile: Count bytes from Offset, or
// to the end of the file, bounded by what is left of the Content-Length.
func (st *stream) sendFile(p supervisor.Part) error {
	defer p.File.Close()
	count := p.Count
	if count < 0 {
		fi, err := p.File.Stat()
		if err != nil {
			return fmt.Errorf("file from wsgi.file_wrapper: %w", err)
		}
		count = max(fi.Size()-p.Offset, 0)
	}
	if st.limit >= 0 {
		count = min(count, st.limit-st.n)
	}
	if count == 0 {
		return nil
	}
	if err := st.spool.flush(st); err != nil {
		return err
	}
	if st.chunked {
		if err := st.raw(chunkSize(st.size[:0], count)); err != nil {
			return err
		}
	}
	sent, err := st.sendRange(p.File, p.Offset, count)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		err = fmt.Errorf("file from wsgi.file_wrapper: %w", err)
	}
	st.n += sent
	if err == nil && st.chunked {
		err = st.raw(crlf)
	}
	return err
}

// sendRange sends n bytes of f from off, with sendfile where the
// connection has it (TCP), else through a buffer, each wait at most
// write_timeout without progress. It reports how many bytes went, and
// io.ErrUnexpectedEOF when the file ended first (it shrank meanwhile).
func (st *stream) sendRange(f *os.File, off, n int64) (int64, error) {
	if rf, ok := st.conn.(io.ReaderFrom); ok {
		if _, err := f.Seek(off, io.SeekStart); err != nil {
			return 0, err
		}
		lr := &io.LimitedReader{R: f, N: n}
		err := progress(st, func() (int64, error) { return rf.ReadFrom(lr) })
		if err == nil && lr.N > 0 {
			err = io.ErrUnexpectedEOF
		}
		return n - lr.N, err
	}
	// Each slice read is written whole before the next is read: a
	// write that times out having sent part of it goes on from there.
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	sent := int64(0)
	for sent < n {
		m, err := f.ReadAt((*bp)[:min(int64(len(*bp)), n-sent)], off+sent)
		if m == 0 {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return sent, err
		}
		b := (*bp)[:m]
		err = progress(st, func() (int64, error) {
			w, err := st.conn.Write(b)
			b = b[w:]
			return int64(w), err
		})
		sent += int64(m - len(b))
		if err != nil {
			return sent, err
		}
	}
	return sent, nil
}
