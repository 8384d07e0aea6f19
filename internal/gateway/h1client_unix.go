//go:build unix

package gateway

import "syscall"

// alive says whether an idle connection is still open: one non-blocking
// read must find nothing to read yet (EAGAIN), neither the server's close
// (EOF) nor bytes nobody asked for.
func (pc *h1Conn) alive() bool {
	if pc.br.Buffered() > 0 {
		return false
	}
	c := pc.conn
	if cc, ok := c.(*countedConn); ok {
		c = cc.Conn
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	alive := false
	var buf [1]byte
	err = raw.Read(func(fd uintptr) bool {
		_, rerr := syscall.Read(int(fd), buf[:])
		alive = rerr == syscall.EAGAIN
		return true
	})
	return err == nil && alive
}
