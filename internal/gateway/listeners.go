package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"
)

// listeners are the servers bound at the ports of the LDS listeners, each
// serving HTTP/1.x and HTTP/2 (h2c, or ALPN h2 with TLS).
type listeners struct {
	bind    string
	drain   time.Duration
	log     *slog.Logger
	handler func(port int) http.Handler
	// cert picks the certificate of a TLS listener's handshake.
	cert func(port int) func(*tls.ClientHelloInfo) (*tls.Certificate, error)

	mu      sync.Mutex // guards servers
	servers map[int]*boundServer
	wg      sync.WaitGroup // the serving and draining goroutines
}

type boundServer struct {
	srv  *portServer
	addr net.Addr
	tls  bool
}

func newListeners(bind string, drain time.Duration, log *slog.Logger, handler func(int) http.Handler, cert func(int) func(*tls.ClientHelloInfo) (*tls.Certificate, error)) *listeners {
	return &listeners{bind: bind, drain: drain, log: log, handler: handler, cert: cert, servers: map[int]*boundServer{}}
}

// bindNew binds every port of ports (true: a TLS port) not bound yet, or
// bound with the other mode. If one cannot be bound, it closes the ones it
// bound and says why: the config that asked for it is not applied.
func (ls *listeners) bindNew(ports map[int]bool) error {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	var added []int
	for _, port := range slices.Sorted(maps.Keys(ports)) {
		isTLS := ports[port]
		if s, ok := ls.servers[port]; ok {
			if s.tls == isTLS {
				continue
			}
			// HTTP became HTTPS or the reverse: the port is bound anew.
			s.srv.close()
			delete(ls.servers, port)
		}
		ln, err := net.Listen("tcp", net.JoinHostPort(ls.bind, strconv.Itoa(port)))
		if err != nil {
			for _, p := range added {
				ls.servers[p].srv.close()
				delete(ls.servers, p)
			}
			return invalid("port %d: %v", port, err)
		}
		var tlsConfig *tls.Config
		if isTLS {
			tlsConfig = &tls.Config{GetCertificate: ls.cert(port), NextProtos: []string{"h2", "http/1.1"}, MinVersion: tls.VersionTLS12}
		}
		srv := newPortServer(ls.handler(port), tlsConfig, ls.log)
		ls.servers[port] = &boundServer{srv: srv, addr: ln.Addr(), tls: isTLS}
		added = append(added, port)
		ls.wg.Go(func() {
			if err := srv.serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				ls.log.Error("listener stopped", "port", port, "err", err)
			}
		})
		ls.log.Info("listening", "addr", ln.Addr().String(), "tls", isTLS)
	}
	return nil
}

// keepOnly drains and closes the servers of ports not in keep: they stop
// accepting at once, and requests in flight get the drain time to finish.
func (ls *listeners) keepOnly(keep map[int]bool) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	for port, s := range ls.servers {
		if keep[port] {
			continue
		}
		delete(ls.servers, port)
		ls.log.Info("closing listener", "addr", s.addr.String())
		ls.wg.Go(func() { ls.shutdown(s.srv) })
	}
}

func (ls *listeners) shutdown(srv *portServer) {
	ctx, cancel := context.WithTimeout(context.Background(), ls.drain)
	defer cancel()
	srv.shutdown(ctx)
}

// addrs are the bound addresses by port.
func (ls *listeners) addrs() map[int]string {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	out := map[int]string{}
	for port, s := range ls.servers {
		out[port] = s.addr.String()
	}
	return out
}

// close drains every server and waits for them.
func (ls *listeners) close() {
	ls.keepOnly(nil)
	ls.wg.Wait()
}

func (ls *listeners) String() string { return fmt.Sprint(ls.addrs()) }
