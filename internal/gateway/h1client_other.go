//go:build !unix

package gateway

// alive cannot look at the socket here: a connection the server closed is
// found by the request failing on it, which is then sent again.
func (pc *h1Conn) alive() bool { return pc.br.Buffered() == 0 }
