package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
)

// GatewayMetadataKey is the node metadata field naming the Gateway
// ("namespace/name") the gateway serves: the control plane scopes the
// wildcard subscriptions of the node to that Gateway's resources.
const GatewayMetadataKey = "sluice.io/gateway"

// Options configure a Gateway.
type Options struct {
	// XDSServer is the host:port of the control plane's ADS server.
	XDSServer string
	// Gateway is the Gateway resource served, "namespace/name".
	Gateway string
	// NodeID is the xDS node id; empty for "<ns>-<name>-<host>-<pid>".
	NodeID string
	// BindAddress is the address listeners bind on, at their ports.
	BindAddress string
	// AdminAddr is the admin server's address; "" disables it.
	AdminAddr string
	// DrainTimeout bounds how long a removed listener, or the gateway at
	// shutdown, waits for requests in flight.
	DrainTimeout time.Duration
	Logger       *slog.Logger
	// AccessLog, when set, gets a JSON line per request.
	AccessLog io.Writer
	// Version is reported to the control plane as the node's user agent
	// version.
	Version string
	// OTLPEndpoint is the OTLP trace receiver: host:port or
	// http://host:port (plaintext), or https://host:port (TLS); "" turns
	// tracing off (a request's traceparent then reaches the upstream
	// unchanged).
	OTLPEndpoint string
	// OTLPProtocol is how spans reach it: "grpc" (the default, OTLP's
	// port 4317) or "http/protobuf" (port 4318, path /v1/traces), the
	// values of OpenTelemetry's OTEL_EXPORTER_OTLP_PROTOCOL.
	OTLPProtocol string
	// OTLPCAFile, with an https endpoint, holds the PEM certificates its
	// receiver's is verified against (default: the system's).
	OTLPCAFile string
	// TraceSampleRatio is the fraction, 0 to 1, of the traces started at
	// the gateway that are sampled; a request that carries a traceparent
	// follows its caller's decision.
	TraceSampleRatio float64
}

// Gateway is the data plane: an xDS client, the listeners and upstreams it
// configures, and an admin server.
type Gateway struct {
	opts     Options
	log      *slog.Logger
	proxyLog *log.Logger  // ReverseProxy's, into log at debug level
	access   *slog.Logger // the access log, nil for none
	node     *corev3.Node
	metrics  *metrics

	cfg        atomic.Pointer[Config]
	transports *transports
	outliers   *outliers
	health     *healthCheckers
	active     *active
	listeners  *listeners

	mu      sync.Mutex  // guards state, warming
	state   *state      // the resources accepted
	warming *time.Timer // puts an incomplete state in force after warmingTimeout

	ready     chan struct{}
	readyOnce sync.Once
	started   chan struct{}
	adminAddr string // set before started is closed

	// tracing is set by Run before any listener serves; nil for off.
	tracing *tracing

	// bg runs the mirrored requests, until bgCtx ends.
	bg    sync.WaitGroup
	bgCtx context.Context
}

// New checks the options and returns a Gateway; Run starts it.
func New(opts Options) (*Gateway, error) {
	ns, name, ok := strings.Cut(opts.Gateway, "/")
	if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
		return nil, fmt.Errorf("gateway: --gateway %q: want NAMESPACE/NAME", opts.Gateway)
	}
	if opts.XDSServer == "" {
		return nil, errors.New("gateway: --xds-server is required")
	}
	if opts.OTLPEndpoint != "" {
		if !(opts.TraceSampleRatio >= 0 && opts.TraceSampleRatio <= 1) {
			return nil, fmt.Errorf("gateway: --trace-sample-ratio %v: want a number from 0 to 1", opts.TraceSampleRatio)
		}
		if _, _, err := otlpTarget(opts.OTLPEndpoint, opts.OTLPCAFile); err != nil {
			return nil, err
		}
		switch opts.OTLPProtocol {
		case "":
			opts.OTLPProtocol = otlpGRPC
		case otlpGRPC, otlpHTTP:
		default:
			return nil, fmt.Errorf("gateway: --otlp-protocol %q: want %s or %s", opts.OTLPProtocol, otlpGRPC, otlpHTTP)
		}
	} else if opts.OTLPCAFile != "" {
		return nil, errors.New("gateway: --otlp-ca-file needs --otlp-endpoint")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.DrainTimeout == 0 {
		opts.DrainTimeout = 15 * time.Second
	}
	if opts.NodeID == "" {
		host, _ := os.Hostname()
		opts.NodeID = fmt.Sprintf("%s-%s-%s-%d", ns, name, host, os.Getpid())
	}
	md, err := structpb.NewStruct(map[string]any{GatewayMetadataKey: opts.Gateway})
	if err != nil {
		return nil, fmt.Errorf("gateway: node metadata: %w", err)
	}
	g := &Gateway{
		opts: opts,
		log:  opts.Logger,
		node: &corev3.Node{
			Id:                   opts.NodeID,
			Cluster:              opts.Gateway,
			Metadata:             md,
			UserAgentName:        "sluice-gateway",
			UserAgentVersionType: &corev3.Node_UserAgentVersion{UserAgentVersion: opts.Version},
		},
		metrics:    newMetrics(),
		transports: newTransports(),
		outliers:   newOutliers(time.Now),
		active:     newActive(),
		state:      newState(),
		ready:      make(chan struct{}),
		started:    make(chan struct{}),
	}
	g.health = newHealthCheckers(g.log, g.metrics)
	g.proxyLog = slog.NewLogLogger(g.log.Handler(), slog.LevelDebug)
	if opts.AccessLog != nil {
		g.access = slog.New(slog.NewJSONHandler(opts.AccessLog, nil))
	}
	g.listeners = newListeners(opts.BindAddress, opts.DrainTimeout, g.log, g.handler, g.certificate)
	return g, nil
}

// NodeID is the gateway's xDS node id.
func (g *Gateway) NodeID() string { return g.opts.NodeID }

// Ready is closed once a first complete config with a listener is in force.
func (g *Gateway) Ready() <-chan struct{} { return g.ready }

// Started is closed once the admin server is bound.
func (g *Gateway) Started() <-chan struct{} { return g.started }

// AdminAddr is the admin server's bound address, once Started.
func (g *Gateway) AdminAddr() string { return g.adminAddr }

// ListenerAddrs are the bound listener addresses by port.
func (g *Gateway) ListenerAddrs() map[int]string { return g.listeners.addrs() }

// Config is the config in force, nil before the first.
func (g *Gateway) Config() *Config { return g.cfg.Load() }

// Run serves until ctx ends, then drains the listeners.
func (g *Gateway) Run(ctx context.Context) error {
	var admin *http.Server
	if g.opts.AdminAddr != "" {
		ln, err := net.Listen("tcp", g.opts.AdminAddr)
		if err != nil {
			return fmt.Errorf("gateway: admin server: %w", err)
		}
		g.adminAddr = ln.Addr().String()
		admin = &http.Server{Handler: g.adminHandler(), ReadHeaderTimeout: 10 * time.Second}
		go admin.Serve(ln)
		g.log.Info("admin server listening", "addr", g.adminAddr)
	}
	close(g.started)
	tr, err := newTracing(ctx, g.opts)
	if err != nil {
		if admin != nil {
			admin.Close()
		}
		return err
	}
	g.tracing = tr
	if tr != nil {
		g.log.Info("tracing on", "otlp_endpoint", g.opts.OTLPEndpoint, "otlp_protocol", g.opts.OTLPProtocol, "sample_ratio", g.opts.TraceSampleRatio)
	}
	bgCtx, bgCancel := context.WithCancel(context.Background())
	g.bgCtx = bgCtx

	g.log.Info("gateway starting", "gateway", g.opts.Gateway, "node", g.opts.NodeID, "xds_server", g.opts.XDSServer)
	client := newXDSClient(g.opts.XDSServer, g.node, g.log, g.update, g.metrics)
	err = client.run(ctx)

	g.mu.Lock()
	if g.warming != nil {
		g.warming.Stop()
		g.warming = nil
	}
	g.mu.Unlock()
	g.listeners.close()
	bgCancel()
	g.bg.Wait()
	g.health.close()
	g.transports.closeAll()
	if admin != nil {
		admin.Close()
	}
	if terr := tr.shutdown(); terr != nil {
		g.log.Warn("tracing shutdown", "err", terr)
	}
	return err
}

// certificate returns the certificate picker of a TLS listener port: by
// SNI, from the config in force at each handshake, so a rotated Secret
// serves new handshakes while open connections keep theirs.
func (g *Gateway) certificate(port int) func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		cfg := g.cfg.Load()
		var l *Listener
		if cfg != nil {
			l = cfg.Listeners[port]
		}
		if l == nil || len(l.TLS) == 0 {
			return nil, fmt.Errorf("gateway: no TLS listener on port %d", port)
		}
		c := l.Chain(hello.ServerName)
		if c == nil || len(c.Certs) == 0 {
			return nil, fmt.Errorf("gateway: no certificate for %q on port %d", hello.ServerName, port)
		}
		for i := range c.Certs {
			if hello.SupportsCertificate(&c.Certs[i]) == nil {
				return &c.Certs[i], nil
			}
		}
		return &c.Certs[0], nil
	}
}

// warmingTimeout bounds how long an incomplete config (a listener whose
// routes, or a cluster whose endpoints, have not arrived) waits before it is
// put in force anyway.
const warmingTimeout = 5 * time.Second

// update applies the resources of one xDS response: it parses them, binds
// the ports of new listeners, and builds the new Config. An error leaves
// everything as it was. The Config goes in force once it is complete (as
// Envoy warms clusters and listeners): a new cluster gets its endpoints, a
// new listener its routes, before any request sees them; before the first
// complete config, or after warmingTimeout, an incomplete one goes in force
// too.
func (g *Gateway) update(typeURL, version string, resources []*anypb.Any) (map[string][]string, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if v, ok := g.state.versions[typeURL]; ok && v == version && version != "" {
		// A resync of what is accepted: nothing to do.
		return g.state.subscriptions(), nil
	}
	next, err := g.state.with(typeURL, version, resources)
	if err != nil {
		return nil, err
	}
	cfg := next.build()
	if typeURL == ListenerType {
		ports := map[int]bool{}
		for port, l := range cfg.Listeners {
			ports[port] = len(l.TLS) > 0
		}
		if err := g.listeners.bindNew(ports); err != nil {
			return nil, err
		}
	}
	g.state = next
	g.log.Debug("config accepted", "type", typeNames[typeURL], "version", version, "config", cfg.describe(), "complete", cfg.Complete)
	select {
	case <-g.ready:
		if !cfg.Complete {
			g.warmLocked()
			return next.subscriptions(), nil
		}
	default:
	}
	g.swapLocked(cfg)
	return next.subscriptions(), nil
}

// warmLocked arms the warming timeout, once per incomplete stretch.
func (g *Gateway) warmLocked() {
	if g.warming != nil {
		return
	}
	g.warming = time.AfterFunc(warmingTimeout, func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.warming == nil {
			return
		}
		g.warming = nil
		cfg := g.state.build()
		if !cfg.Complete {
			g.log.Warn("config still incomplete after the warming timeout, putting it in force", "config", cfg.describe(), "timeout", warmingTimeout)
		}
		g.swapLocked(cfg)
	})
}

// swapLocked puts cfg in force, closes the listeners it no longer has and
// forgets the transports of clusters it no longer has.
func (g *Gateway) swapLocked(cfg *Config) {
	if g.warming != nil {
		g.warming.Stop()
		g.warming = nil
	}
	g.health.update(cfg) // before cfg is in force: it links cfg's clusters to their health
	for _, c := range cfg.Clusters {
		c.pool = g.transports.get(c)
		c.inflight = g.active.counter(c.Name)
	}
	g.cfg.Store(cfg)
	keep := map[int]bool{}
	for port := range cfg.Listeners {
		keep[port] = true
	}
	g.listeners.keepOnly(keep)
	g.transports.prune(cfg)
	g.outliers.prune(cfg)
	g.log.Debug("config in force", "config", cfg.describe(), "complete", cfg.Complete)
	if cfg.Complete && len(cfg.Listeners) > 0 {
		g.readyOnce.Do(func() {
			g.log.Info("first complete config in force", "config", cfg.describe())
			close(g.ready)
		})
	}
}
