//go:build !linux

package gateway

import "net"

// nonblocking is Linux's alone (nonblock_linux.go): elsewhere connections
// keep net's reads and writes.
func nonblocking(c net.Conn) net.Conn { return c }
