package gateway

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
)

// nonblockConn is a TCP connection whose reads and writes skip the Go
// scheduler's system-call bookkeeping.
//
// net's own Read and Write tell the scheduler that the thread may block
// (entersyscall). Ours never does: the socket is non-blocking, and a read or
// write that would wait gets EAGAIN and goes back to the netpoller through
// the RawConn, which keeps deadlines and Close working as before. But the
// bookkeeping costs: a write on loopback runs the receiver's TCP processing
// inline, tens of microseconds, and on a busy CPU the kernel may preempt the
// thread inside it. The runtime's monitor thread (sysmon) then takes the
// processor back and hands it to another thread, and having had work, it
// keeps waking every 20 µs. Under load that cost the gateway about a tenth of
// its CPU per request (bench/README.md). The calls stay short here: a read or
// write moves at most one buffer.
type nonblockConn struct {
	*net.TCPConn
	raw syscall.RawConn

	// One read and one write may run at once, as on any net.Conn; the
	// state of each is kept here instead of in a closure allocated per call.
	rmu   sync.Mutex
	rbuf  []byte
	rn    int
	rerr  syscall.Errno
	readF func(fd uintptr) bool

	wmu    sync.Mutex
	wbuf   []byte
	wn     int
	werr   syscall.Errno
	writeF func(fd uintptr) bool
}

// nonblocking gives c its non-blocking reads and writes when it is a TCP
// connection; anything else is returned as it is.
func nonblocking(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	nc := &nonblockConn{TCPConn: tc, raw: raw}
	nc.readF, nc.writeF = nc.readFD, nc.writeFD
	return nc
}

func (c *nonblockConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.rmu.Lock()
	defer c.rmu.Unlock()
	c.rbuf, c.rn, c.rerr = p, 0, 0
	err := c.raw.Read(c.readF)
	n, errno := c.rn, c.rerr
	c.rbuf = nil
	if err != nil || errno != 0 {
		return n, c.opError("read", err, errno)
	}
	if n == 0 {
		return 0, io.EOF
	}
	return n, nil
}

// readFD reads once; false asks the netpoller to wait for data.
func (c *nonblockConn) readFD(fd uintptr) bool {
	for {
		n, errno := sysRead(fd, c.rbuf)
		switch errno {
		case 0:
			c.rn = n
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		default:
			c.rerr = errno
		}
		return true
	}
}

func (c *nonblockConn) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.wbuf, c.wn, c.werr = p, 0, 0
	err := c.raw.Write(c.writeF)
	n, errno := c.wn, c.werr
	c.wbuf = nil
	if err != nil || errno != 0 {
		return n, c.opError("write", err, errno)
	}
	return n, nil
}

// writeFD writes until all is written; false asks the netpoller to wait for
// room.
func (c *nonblockConn) writeFD(fd uintptr) bool {
	for c.wn < len(c.wbuf) {
		n, errno := sysWrite(fd, c.wbuf[c.wn:])
		switch errno {
		case 0:
			c.wn += n
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			c.werr = errno
			return true
		}
	}
	return true
}

// opError is the error net's Read or Write would give: an *net.OpError
// around the system call's error, or around the netpoller's (a deadline
// passed, the connection closed).
func (c *nonblockConn) opError(op string, pollErr error, errno syscall.Errno) error {
	err := pollErr
	var oe *net.OpError
	if errors.As(pollErr, &oe) { // the RawConn's, Op "raw-read" or "raw-write"
		err = oe.Err
	}
	if err == nil {
		err = os.NewSyscallError(op, errno)
	}
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}
