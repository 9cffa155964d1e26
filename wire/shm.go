package wire

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// SharedMemory makes a memory file (memfd) of size bytes, named name, and
// maps it shared and writable: memory berth and a worker both see, the
// worker through the descriptor it is given (shared request bodies, the
// out file). Unmap it with unix.Munmap and close the file when done.
func SharedMemory(name string, size int) (*os.File, []byte, error) {
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC)
	if err != nil {
		return nil, nil, fmt.Errorf("creating shared memory %q: %w", name, err)
	}
	f := os.NewFile(uintptr(fd), name)
	if err := f.Truncate(int64(size)); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("sizing shared memory %q to %d bytes: %w", name, size, err)
	}
	mem, err := unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("mapping shared memory %q: %w", name, err)
	}
	return f, mem, nil
}
