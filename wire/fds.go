package wire

// A worker starts with these file descriptors, besides stdin, stdout and
// stderr: berth's supervisor passes them (spawn's ExtraFiles, where fd
// 3 is the first), worker.py opens them (its FD_ constants and
// worker_fds), and TestWorkerFDs checks that the two say the same. A
// worker runs THREADS Python threads, each serving a lane (a socket of
// its own); the lanes come first, with the log pipe after the first so
// that a one-thread worker's socket and log are at fixed numbers.
const (
	// FDLane0 is the first thread's socket, over which the worker also
	// says hello.
	FDLane0 = 3
	// FDLog is a pipe for the worker's structured log records, one JSON
	// object a line.
	FDLog = 4
	// FDLanes is the second thread's socket; each further thread's is
	// the next number.
	FDLanes = 5
)

// WorkerFDs is where each of a worker's files is.
type WorkerFDs struct {
	// Lanes are the threads' sockets, the first thread's first.
	Lanes []int
	Log   int
	// Marks is shared memory in which each thread writes the count of the
	// request it starts (a uint32 at 4 × its number), so that berth
	// knows, when the worker dies, which requests it may send again.
	Marks int
	// Flush is a pipe on which berth asks for the answers of a batch
	// made so far (a byte each time).
	Flush int
	// Out is the shared memory where the worker leaves response bodies
	// (see OutRegionOffset).
	Out int
}

// WorkerFDLayout is the layout of a worker of threads threads (at least 1).
func WorkerFDLayout(threads int) WorkerFDs {
	l := WorkerFDs{Lanes: []int{FDLane0}, Log: FDLog}
	for i := 1; i < threads; i++ {
		l.Lanes = append(l.Lanes, FDLanes+i-1)
	}
	after := FDLanes + threads - 1
	l.Marks, l.Flush, l.Out = after, after+1, after+2
	return l
}
