package control

import "syscall"

// syscallECONNREFUSED is a socket file nobody listens on.
var syscallECONNREFUSED = syscall.ECONNREFUSED

// umask sets the process umask and returns the old one. The control
// socket is created under a strict umask so that it is never, even for a
// moment, connectable by other users.
func umask(m int) int { return syscall.Umask(m) }
