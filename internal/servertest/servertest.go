// Package servertest starts real Sluice servers and embedded etcds for tests,
// the way net/http/httptest starts HTTP servers: on loopback, on free ports,
// with data in the test's temporary directory, stopped at cleanup.
package servertest

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/sluice/sluice/internal/client"
	"github.com/sluice/sluice/internal/server"
	"github.com/sluice/sluice/internal/store"
)

// Logger returns a logger for tests: quiet unless SLUICE_TEST_LOG=debug.
func Logger() *slog.Logger {
	if os.Getenv("SLUICE_TEST_LOG") == "debug" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// Server is a sluice server running in the test process.
type Server struct {
	// URL is the API's base URL, e.g. http://127.0.0.1:41234.
	URL string
	// XDSAddr is the host:port of the ADS server.
	XDSAddr string
	// ConsulAddr is the host:port of the Consul-compatible API.
	ConsulAddr string
	// Config is what the server was started with (DataDir and HTTPAddr
	// included), so Restart brings it back on the same data and address.
	Config server.Config

	cancel context.CancelFunc
	done   chan error
}

// Start runs a server with an embedded etcd in a temporary directory. The
// config may set any field; DataDir, HTTPAddr, XDSAddr, ConsulAddr and
// Logger get test defaults.
func Start(t testing.TB, cfg server.Config) *Server {
	t.Helper()
	if cfg.DataDir == "" && len(cfg.EtcdEndpoints) == 0 {
		cfg.DataDir = t.TempDir()
	}
	if cfg.HTTPAddr == "" {
		cfg.HTTPAddr = "127.0.0.1:0"
	}
	if cfg.XDSAddr == "" {
		cfg.XDSAddr = "127.0.0.1:0"
	}
	if cfg.ConsulAddr == "" {
		cfg.ConsulAddr = "127.0.0.1:0"
	}
	if cfg.Logger == nil {
		cfg.Logger = Logger()
	}
	s := &Server{Config: cfg}
	s.start(t)
	t.Cleanup(func() { s.Stop() })
	return s
}

func (s *Server) start(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	srv := server.New(s.Config)
	s.cancel, s.done = cancel, make(chan error, 1)
	go func() { s.done <- srv.Run(ctx) }()
	select {
	case <-srv.Ready():
	case err := <-s.done:
		cancel()
		t.Fatalf("servertest: server did not start: %v", err)
	case <-time.After(60 * time.Second):
		cancel()
		t.Fatal("servertest: server not ready after 60s")
	}
	// Keep the addresses across restarts, so clients and watches reconnect to them.
	s.Config.HTTPAddr, s.Config.XDSAddr, s.Config.ConsulAddr = srv.HTTPAddr(), srv.XDSAddr(), srv.ConsulAddr()
	s.URL = "http://" + srv.HTTPAddr()
	s.XDSAddr = srv.XDSAddr()
	s.ConsulAddr = srv.ConsulAddr()
}

// Stop shuts the server down gracefully and returns Run's error. Stopping a
// stopped server does nothing.
func (s *Server) Stop() error {
	if s.cancel == nil {
		return nil
	}
	s.cancel()
	s.cancel = nil
	return <-s.done
}

// Restart stops the server and starts it again on the same data and address.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	if err := s.Stop(); err != nil {
		t.Fatalf("servertest: stop: %v", err)
	}
	s.start(t)
}

// Client returns an API client of the server.
func (s *Server) Client(t testing.TB, token string) *client.Client {
	t.Helper()
	c, err := client.New(s.URL, token)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Etcd is an embedded etcd for tests that use the store or etcd directly.
type Etcd struct {
	*store.Embedded
	Dir    string
	Client *clientv3.Client
}

// StartEtcd starts an embedded etcd in a temporary directory, with a client,
// both closed at cleanup.
func StartEtcd(t testing.TB) *Etcd {
	t.Helper()
	// etcd wants to create its data directory itself, private to this user.
	dir := filepath.Join(t.TempDir(), "etcd")
	e, err := store.StartEmbedded(context.Background(), store.EmbedConfig{Dir: dir, Logger: Logger()})
	if err != nil {
		t.Fatal(err)
	}
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{e.Endpoint()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		e.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		e.Close()
	})
	return &Etcd{Embedded: e, Dir: dir, Client: c}
}
