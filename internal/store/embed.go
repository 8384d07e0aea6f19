package store

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// EmbedConfig configures the embedded etcd.
type EmbedConfig struct {
	// Dir is the data directory.
	Dir string
	// ClientAddr and PeerAddr are loopback host:port addresses; empty picks a
	// free port at start, so several servers can run side by side.
	ClientAddr string
	PeerAddr   string
	Logger     *slog.Logger
}

// Embedded is an etcd server running inside this process.
type Embedded struct {
	etcd      *embed.Etcd
	closing   atomic.Bool
	closeOnce sync.Once
}

// StartEmbedded starts a single-member etcd on loopback and waits until it
// serves.
func StartEmbedded(ctx context.Context, cfg EmbedConfig) (*Embedded, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	clientURL, err := loopbackURL("etcd-client-addr", cfg.ClientAddr)
	if err != nil {
		return nil, err
	}
	peerURL, err := loopbackURL("etcd-peer-addr", cfg.PeerAddr)
	if err != nil {
		return nil, err
	}
	e := &Embedded{}
	ec := embed.NewConfig()
	ec.Name = "sluice"
	ec.Dir = cfg.Dir
	ec.ListenClientUrls = []url.URL{*clientURL}
	ec.AdvertiseClientUrls = []url.URL{*clientURL}
	ec.ListenPeerUrls = []url.URL{*peerURL}
	// The advertised peer URL is part of the member's identity in the data
	// dir; it must not change between runs even when the port does. A single
	// member never dials it.
	ec.AdvertisePeerUrls = []url.URL{{Scheme: "http", Host: "127.0.0.1:0"}}
	ec.InitialCluster = ec.Name + "=http://127.0.0.1:0"
	// One member: no peer to wait for, so short raft timeouts only speed start-up.
	ec.TickMs = 10
	ec.ElectionMs = 100
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.New(&slogCore{log: cfg.Logger.With("component", "etcd"), closing: &e.closing}))
	etcd, err := embed.StartEtcd(ec)
	if err != nil {
		return nil, fmt.Errorf("store: start embedded etcd in %s: %w", cfg.Dir, err)
	}
	e.etcd = etcd
	select {
	case <-etcd.Server.ReadyNotify():
	case err := <-etcd.Err():
		e.Close()
		return nil, fmt.Errorf("store: embedded etcd: %w", err)
	case <-time.After(60 * time.Second):
		e.Close()
		return nil, fmt.Errorf("store: embedded etcd in %s not ready after 60s", cfg.Dir)
	case <-ctx.Done():
		e.Close()
		return nil, ctx.Err()
	}
	return e, nil
}

func loopbackURL(flag, addr string) (*url.URL, error) {
	if addr == "" {
		return &url.URL{Scheme: "http", Host: "127.0.0.1:0"}, nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("store: --%s %q: %w", flag, addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("store: --%s %q: the embedded etcd listens on loopback only", flag, addr)
	}
	return &url.URL{Scheme: "http", Host: addr}, nil
}

// Endpoint is the client address to dial.
func (e *Embedded) Endpoint() string { return e.etcd.Clients[0].Addr().String() }

// Close stops etcd; it returns once the data is flushed and the ports
// closed. Closing twice does nothing.
func (e *Embedded) Close() {
	e.closeOnce.Do(func() {
		e.closing.Store(true)
		e.etcd.Close()
	})
}

// slogCore sends etcd's zap logs to slog. While etcd closes, its listeners
// report "use of closed network connection" as errors; those are demoted to debug.
type slogCore struct {
	log     *slog.Logger
	fields  []zapcore.Field
	closing *atomic.Bool
}

func (c *slogCore) Enabled(l zapcore.Level) bool {
	return c.log.Enabled(context.Background(), slogLevel(l))
}

func (c *slogCore) With(fields []zapcore.Field) zapcore.Core {
	return &slogCore{log: c.log, fields: append(append([]zapcore.Field{}, c.fields...), fields...), closing: c.closing}
}

func (c *slogCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *slogCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range append(c.fields, fields...) {
		f.AddTo(enc)
	}
	attrs := make([]any, 0, 2*len(enc.Fields))
	for k, v := range enc.Fields {
		attrs = append(attrs, k, v)
	}
	level := slogLevel(e.Level)
	if (c.closing.Load() || benign[e.Message]) && level > slog.LevelDebug {
		level = slog.LevelDebug
	}
	c.log.Log(context.Background(), level, e.Message, attrs...)
	return nil
}

// benign are etcd warnings that do not apply to a single embedded member
// serving only this process.
var benign = map[string]bool{
	"Running http and grpc server on single port. This is not recommended for production.": true,
	"simple token is not cryptographically signed":                                         true,
	// A new single-member cluster logs these once before its first term.
	"Failed to detect schema version":  true,
	"failed to update storage version": true,
}

func (c *slogCore) Sync() error { return nil }

func slogLevel(l zapcore.Level) slog.Level {
	switch {
	case l <= zapcore.InfoLevel:
		// etcd's info logs narrate its internals; Sluice shows them at debug.
		return slog.LevelDebug
	case l == zapcore.WarnLevel:
		return slog.LevelWarn
	default:
		return slog.LevelError
	}
}
