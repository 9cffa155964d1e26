package supervisor

import (
	"fmt"
	"os"

	"github.com/berthd/berth/wire"
)

// workerFiles are the files a worker starts with (wire.WorkerFDLayout):
// the worker's ends, passed to it and closed in berth once it has them,
// and berth's ends, which the process keeps.
type workerFiles struct {
	// Berth's ends.
	lanes            []*lane // the threads' sockets
	stdoutR, stderrR *os.File
	logR             *os.File
	marks            *os.File   // shared with the worker (mapped by it)
	asksW            *os.File   // the flush pipe
	out              *outRegion // berth keeps its mapping; its file is the worker's
	children         []*os.File // the worker's ends of the lanes
	stdoutW, stderrW *os.File   // the worker's stdout and stderr
	logW, asksR      *os.File   // the worker's ends of the log and flush pipes
}

// openWorkerFiles opens a worker's files for threads threads; on failure
// it closes what it opened.
func openWorkerFiles(threads int) (wf *workerFiles, err error) {
	wf = &workerFiles{}
	defer func() {
		if err != nil {
			wf.closeWorkerEnds()
			wf.closeOurEnds()
			wf = nil
		}
	}()
	for i := 0; i < threads; i++ {
		c, child, err := socketPair()
		if err != nil {
			return wf, err
		}
		wf.lanes = append(wf.lanes, newLane(c, i))
		wf.children = append(wf.children, child)
	}
	if wf.stdoutR, wf.stdoutW, err = wf.pipe("stdout pipe"); err != nil {
		return wf, err
	}
	if wf.stderrR, wf.stderrW, err = wf.pipe("stderr pipe"); err != nil {
		return wf, err
	}
	if wf.logR, wf.logW, err = wf.pipe("log pipe"); err != nil {
		return wf, err
	}
	if wf.asksR, wf.asksW, err = wf.pipe("the worker's flush pipe"); err != nil {
		return wf, err
	}
	if wf.marks, err = newMarks(threads); err != nil {
		return wf, err
	}
	wf.out, err = newOutRegion(threads)
	return wf, err
}

// pipe opens a pipe; what names it in the error.
func (wf *workerFiles) pipe(what string) (r, w *os.File, err error) {
	if r, w, err = os.Pipe(); err != nil {
		return nil, nil, fmt.Errorf("creating %s: %w", what, err)
	}
	return r, w, nil
}

// extraFiles is exec.Cmd's ExtraFiles for the worker: each file at the
// descriptor the layout gives it (ExtraFiles[i] is fd 3+i).
func (wf *workerFiles) extraFiles(threads int) []*os.File {
	l := wire.WorkerFDLayout(threads)
	at := map[int]*os.File{l.Log: wf.logW, l.Marks: wf.marks, l.Flush: wf.asksR, l.Out: wf.out.file}
	for i, fd := range l.Lanes {
		at[fd] = wf.children[i]
	}
	files := make([]*os.File, len(at))
	for fd, f := range at {
		files[fd-3] = f
	}
	return files
}

// closeWorkerEnds closes berth's copies of what the worker was passed
// (the out file's mapping stays).
func (wf *workerFiles) closeWorkerEnds() {
	for _, f := range append(wf.children, wf.stdoutW, wf.stderrW, wf.logW, wf.asksR) {
		if f != nil {
			f.Close()
		}
	}
	if wf.out != nil {
		wf.out.file.Close()
	}
}

// closeOurEnds closes berth's ends, when the worker did not start.
func (wf *workerFiles) closeOurEnds() {
	for _, l := range wf.lanes {
		l.conn.Close()
	}
	for _, f := range []*os.File{wf.stdoutR, wf.stderrR, wf.logR, wf.asksW, wf.marks} {
		if f != nil {
			f.Close()
		}
	}
	if wf.out != nil {
		wf.out.close()
	}
}
