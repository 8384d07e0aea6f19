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

// listeners are the HTTP servers bound at the ports of the LDS listeners,
// each serving HTTP/1.1 and h2c.
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
	srv  *http.Server
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
			s.srv.Close()
			delete(ls.servers, port)
		}
		ln, err := net.Listen("tcp", net.JoinHostPort(ls.bind, strconv.Itoa(port)))
		if err != nil {
			for _, p := range added {
				ls.servers[p].srv.Close()
				delete(ls.servers, p)
			}
			return invalid("port %d: %v", port, err)
		}
		protocols := new(http.Protocols)
		protocols.SetHTTP1(true)
		if isTLS {
			protocols.SetHTTP2(true)
		} else {
			protocols.SetUnencryptedHTTP2(true)
		}
		srv := &http.Server{
			Handler:           ls.handler(port),
			Protocols:         protocols,
			ReadHeaderTimeout: 30 * time.Second,
			IdleTimeout:       5 * time.Minute,
			ErrorLog:          slog.NewLogLogger(ls.log.Handler(), slog.LevelDebug),
		}
		if isTLS {
			srv.TLSConfig = &tls.Config{GetCertificate: ls.cert(port), NextProtos: []string{"h2", "http/1.1"}, MinVersion: tls.VersionTLS12}
			ln = tls.NewListener(ln, srv.TLSConfig)
		}
		ls.servers[port] = &boundServer{srv: srv, addr: ln.Addr(), tls: isTLS}
		added = append(added, port)
		ls.wg.Go(func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
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

func (ls *listeners) shutdown(srv *http.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), ls.drain)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		srv.Close()
	}
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
