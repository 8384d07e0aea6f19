//go:build race

package gateway

import "syscall"

// Under the race detector, reads and writes go through syscall's, which
// tell the detector that a write to a socket happens before the read of
// its bytes (as net's own do): a test that hands data to a server over a
// connection must not look racy. Everything else of nonblockConn runs as
// in other builds.

func sysRead(fd uintptr, p []byte) (int, syscall.Errno) {
	n, err := syscall.Read(int(fd), p)
	return max(n, 0), errnoOf(err)
}

func sysWrite(fd uintptr, p []byte) (int, syscall.Errno) {
	n, err := syscall.Write(int(fd), p)
	return max(n, 0), errnoOf(err)
}

func errnoOf(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	return err.(syscall.Errno)
}
