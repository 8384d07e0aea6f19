// Package server assembles the control plane: it starts the embedded etcd or
// connects to an external one, builds the store and the API, serves them, and
// shuts everything down in order. It holds wiring and lifecycle only; every
// behaviour lives in the component packages.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/sluice/sluice/internal/apiserver"
	"github.com/sluice/sluice/internal/auth"
	"github.com/sluice/sluice/internal/consul"
	"github.com/sluice/sluice/internal/gatewaystatus"
	"github.com/sluice/sluice/internal/informer"
	"github.com/sluice/sluice/internal/kv"
	"github.com/sluice/sluice/internal/registry"
	"github.com/sluice/sluice/internal/replica"
	"github.com/sluice/sluice/internal/resource"
	"github.com/sluice/sluice/internal/store"
	"github.com/sluice/sluice/internal/xds"
)

// Config is what `sluice server` is told by its flags.
type Config struct {
	DataDir  string
	HTTPAddr string
	// XDSAddr is where ADS is served to proxies and proxyless clients.
	XDSAddr string
	// ConsulAddr is where the Consul-compatible API is served (empty: not
	// at all). Its own listener: the main API's /v1/kv is Sluice's KV.
	ConsulAddr string
	// XDSDebounceWindow and XDSDebounceMaxDelay shape how bursts of changes
	// become snapshots (see xds.ControllerOptions).
	XDSDebounceWindow   time.Duration
	XDSDebounceMaxDelay time.Duration
	// RegistryLeaseTTL bounds how long the health checks of a replica that
	// dies stay unowned before another replica takes them over.
	RegistryLeaseTTL time.Duration
	// EtcdEndpoints selects an external etcd cluster; empty runs the embedded one.
	EtcdEndpoints  []string
	EtcdClientAddr string
	EtcdPeerAddr   string
	// TokenFile enables bearer-token authentication.
	TokenFile string
	// Insecure allows serving a non-loopback address without tokens.
	Insecure         bool
	MaxBodyBytes     int64
	RequestTimeout   time.Duration
	BookmarkInterval time.Duration
	CompactInterval  time.Duration
	DefragInterval   time.Duration
	DefragThreshold  int64
	ShutdownTimeout  time.Duration
	Logger           *slog.Logger
}

// Server is a running control plane.
type Server struct {
	cfg   Config
	log   *slog.Logger
	ready chan struct{}

	mu         sync.Mutex // guards httpAddr, xdsAddr, consulAddr
	httpAddr   string
	xdsAddr    string
	consulAddr string
}

// New returns a server; Run starts it.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = 10 * time.Second
	}
	return &Server{cfg: cfg, log: cfg.Logger, ready: make(chan struct{})}
}

// Ready is closed once the API serves.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// HTTPAddr is the address the API listens on, once Ready.
func (s *Server) HTTPAddr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.httpAddr
}

// XDSAddr is the address ADS listens on, once Ready.
func (s *Server) XDSAddr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.xdsAddr
}

// ConsulAddr is the address the Consul-compatible API listens on, once
// Ready ("" when it is not served).
func (s *Server) ConsulAddr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.consulAddr
}

// CheckListenAddr refuses to serve the API on a non-loopback address without
// authentication unless insecure is set.
func CheckListenAddr(addr string, haveTokens, insecure bool) error {
	return checkListenAddr("--http-addr", "the API", addr, haveTokens, insecure)
}

// checkListenAddr refuses to serve what (given by flag) on a non-loopback
// address without authentication unless insecure is set.
func checkListenAddr(flag, what, addr string, haveTokens, insecure bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%s %q: %w", flag, addr, err)
	}
	if haveTokens || insecure || isLoopback(host) {
		return nil
	}
	return fmt.Errorf("refusing to serve %s on %s without authentication: anyone who can reach it could change routing. "+
		"Pass --token-file with admin/read tokens, or --insecure to accept unauthenticated access from the network", what, addr)
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Run serves until ctx ends, then shuts down gracefully: in-flight requests
// finish, watch streams end, etcd closes.
func (s *Server) Run(ctx context.Context) error {
	cfg := s.cfg
	var tokens *auth.Tokens
	if cfg.TokenFile != "" {
		var err error
		if tokens, err = auth.LoadFile(cfg.TokenFile); err != nil {
			return err
		}
	}
	if err := CheckListenAddr(cfg.HTTPAddr, tokens != nil, cfg.Insecure); err != nil {
		return err
	}
	if err := checkXDSAddr(cfg.XDSAddr, cfg.Insecure); err != nil {
		return err
	}
	if cfg.ConsulAddr != "" {
		if err := checkListenAddr("--consul-addr", "the Consul-compatible API", cfg.ConsulAddr, tokens != nil, cfg.Insecure); err != nil {
			return err
		}
	}
	if tokens == nil && !isLoopbackAddr(cfg.HTTPAddr) {
		s.log.Warn("serving the API on a network address without authentication (--insecure)", "addr", cfg.HTTPAddr)
	}
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on --http-addr: %w", err)
	}
	defer ln.Close()
	xln, err := net.Listen("tcp", cfg.XDSAddr)
	if err != nil {
		return fmt.Errorf("listen on --xds-addr: %w", err)
	}
	defer xln.Close()
	var cln net.Listener
	if cfg.ConsulAddr != "" {
		if cln, err = net.Listen("tcp", cfg.ConsulAddr); err != nil {
			return fmt.Errorf("listen on --consul-addr: %w", err)
		}
		defer cln.Close()
	}

	endpoints := cfg.EtcdEndpoints
	embedded := len(endpoints) == 0
	if embedded {
		dir, err := filepath.Abs(cfg.DataDir)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("data dir: %w", err)
		}
		etcd, err := store.StartEmbedded(ctx, store.EmbedConfig{
			Dir: filepath.Join(dir, "etcd"), ClientAddr: cfg.EtcdClientAddr, PeerAddr: cfg.EtcdPeerAddr, Logger: s.log,
		})
		if err != nil {
			return err
		}
		defer etcd.Close()
		endpoints = []string{etcd.Endpoint()}
		s.log.Info("embedded etcd started", "data_dir", dir, "client", etcd.Endpoint())
	}
	client, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		return fmt.Errorf("etcd client: %w", err)
	}
	defer client.Close()

	// Sluice's metrics go to a registry of this server's own; the default
	// registry already holds the Go and process collectors and etcd's metrics.
	reg := prometheus.NewRegistry()
	st := store.New(client, resource.Builtin(), store.Options{
		Logger: s.log.With("component", "store"), BookmarkInterval: cfg.BookmarkInterval, Registerer: reg,
	})
	apiURL := advertisedURL(ln.Addr())
	members := replica.New(client, apiURL, s.log.With("component", "replica"))
	xdsLog := s.log.With("component", "xds")
	ads := xds.NewServer(xds.ServerOptions{Logger: xdsLog, Registerer: reg})
	sources := xds.InputSources(func(k *resource.Kind) informer.Source {
		return informer.NewStoreSource(st, k, informer.Scope{})
	})
	translator := xds.NewController(sources, ads.Cache, xds.ControllerOptions{
		Logger: xdsLog, Window: cfg.XDSDebounceWindow, MaxDelay: cfg.XDSDebounceMaxDelay,
	})
	routeStatus := gatewaystatus.New(st, gatewaystatus.Sources(func(k *resource.Kind) informer.Source {
		return informer.NewStoreSource(st, k, informer.Scope{})
	}), gatewaystatus.Options{Logger: s.log.With("component", "gatewaystatus"), Registerer: reg})
	health := registry.New(st, registry.Options{
		ReplicaID: members.Self().ID, SessionTTL: cfg.RegistryLeaseTTL,
		Logger: s.log.With("component", "registry"), Registerer: reg,
	})
	kvStore := kv.New(client, kv.Options{Logger: s.log.With("component", "kv")})
	kvAPI := kv.NewHandler(kvStore, s.log.With("component", "kv"))
	api := apiserver.New(apiserver.Config{
		Store: st, Tokens: tokens, MaxBodyBytes: cfg.MaxBodyBytes, RequestTimeout: cfg.RequestTimeout, Logger: s.log.With("component", "apiserver"),
		Registerer: reg,
		// etcd registers its own metrics with the default registry.
		Gatherer: prometheus.Gatherers{reg, prometheus.DefaultGatherer},
		Extra: map[string]http.Handler{
			"GET /apis/sluice.io/v1alpha1/proxies": ads.Proxies.Handler(apiURL, peerAPIs(members)),
			"/v1/kv/":                              kvAPI,
			registry.HeartbeatPath:                 health.HeartbeatHandler(),
		},
	})

	bg, stopBG := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { st.Run(bg) })
	maint := store.MaintenanceOptions{CompactInterval: cfg.CompactInterval}
	if embedded {
		// Defragmenting blocks the member; do it only to an etcd we own.
		maint.DefragInterval, maint.DefragThreshold = cfg.DefragInterval, cfg.DefragThreshold
	}
	wg.Go(func() { st.RunMaintenance(bg, maint) })
	wg.Go(func() { members.Run(bg) })
	wg.Go(func() { kvStore.Run(bg) })
	wg.Go(func() {
		if err := health.Run(bg); err != nil {
			s.log.Error("registry stopped", "err", err)
		}
	})
	wg.Go(func() {
		if err := translator.Run(bg); err != nil {
			s.log.Error("xds translation stopped", "err", err)
		}
	})
	wg.Go(func() {
		if err := routeStatus.Run(bg); err != nil {
			s.log.Error("gateway status stopped", "err", err)
		}
	})
	wg.Go(func() {
		if err := ads.Serve(bg, xln); err != nil {
			s.log.Error("xds server stopped", "err", err)
		}
	})

	var csrv *http.Server
	consulServed := make(chan struct{})
	if cln == nil {
		close(consulServed)
	} else {
		facade := consul.New(consul.Options{
			Store: st, Registry: health, KV: kvStore, Tokens: tokens, RequestTimeout: cfg.RequestTimeout, MaxBodyBytes: cfg.MaxBodyBytes,
			Logger: s.log.With("component", "consul"),
		})
		csrv = &http.Server{Handler: facade.Handler(), ReadHeaderTimeout: 10 * time.Second}
		// Blocking queries answer at once when shutdown begins.
		csrv.RegisterOnShutdown(facade.Close)
		go func() {
			defer close(consulServed)
			if err := csrv.Serve(cln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.log.Error("consul api stopped", "err", err)
			}
		}()
	}

	srv := &http.Server{Handler: api.Handler(), ReadHeaderTimeout: 10 * time.Second}
	srv.RegisterOnShutdown(api.CloseWatches)
	srv.RegisterOnShutdown(kvAPI.CloseWatches)
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	s.mu.Lock()
	s.httpAddr, s.xdsAddr = ln.Addr().String(), xln.Addr().String()
	if cln != nil {
		s.consulAddr = cln.Addr().String()
	}
	s.mu.Unlock()
	s.log.Info("sluice server serving", "http", "http://"+ln.Addr().String(), "xds", xln.Addr().String(), "consul", s.ConsulAddr(), "etcd", endpoints, "auth", tokens != nil)
	close(s.ready)

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		if csrv != nil {
			csrv.Close()
		}
		<-consulServed
		stopBG()
		wg.Wait()
		return fmt.Errorf("http server: %w", err)
	}
	s.log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	consulDone := make(chan error, 1)
	go func() {
		if csrv == nil {
			consulDone <- nil
			return
		}
		consulDone <- csrv.Shutdown(shutdownCtx)
	}()
	err = srv.Shutdown(shutdownCtx)
	if cerr := <-consulDone; err == nil {
		err = cerr
	}
	<-consulServed
	stopBG()
	wg.Wait()
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("shutdown: %w", err)
	}
	s.log.Info("stopped")
	return nil
}

// advertisedURL is the API URL other replicas reach this one at: the listen
// address, with loopback standing in for an unspecified host (all
// interfaces) — replicas on other machines need --http-addr to name a host.
func advertisedURL(addr net.Addr) string {
	host, port, _ := net.SplitHostPort(addr.String())
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// peerAPIs lists the API URLs of the other replicas.
func peerAPIs(m *replica.Membership) xds.PeersFunc {
	return func(ctx context.Context) ([]string, error) {
		peers, err := m.Peers(ctx)
		if err != nil {
			return nil, err
		}
		urls := make([]string, len(peers))
		for i, p := range peers {
			urls[i] = p.API
		}
		return urls, nil
	}
}

// checkXDSAddr refuses to serve xDS on the network unless insecure is set:
// xDS has no authentication yet (workload mTLS comes with the CA), and
// anyone who can reach it can read the whole routing config.
func checkXDSAddr(addr string, insecure bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--xds-addr %q: %w", addr, err)
	}
	if insecure || isLoopback(host) {
		return nil
	}
	return fmt.Errorf("refusing to serve xDS on %s: xDS has no authentication yet, so anyone who can reach it could read the routing config. "+
		"Pass --insecure to serve it on the network anyway", addr)
}

func isLoopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	return err == nil && isLoopback(host)
}
