package main

import (
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluice/sluice/internal/apiserver"
	"github.com/sluice/sluice/internal/server"
)

func newServerCommand() *cobra.Command {
	var (
		cfg       server.Config
		logLevel  string
		logFormat string
	)
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the control plane (API, store) with an embedded or external etcd",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := newLogger(logLevel, logFormat)
			if err != nil {
				return err
			}
			cfg.Logger = log
			return server.New(cfg).Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.DataDir, "data-dir", "./sluice-data", "directory of the embedded etcd's data")
	f.StringVar(&cfg.HTTPAddr, "http-addr", "127.0.0.1:7070", "address of the REST API, UI, health and metrics")
	f.StringVar(&cfg.XDSAddr, "xds-addr", "127.0.0.1:18000", "address of the xDS (ADS) server for proxies and proxyless gRPC clients")
	f.StringVar(&cfg.ConsulAddr, "consul-addr", "127.0.0.1:8500", "address of the Consul-compatible API (Consul's own default, so Consul clients work unchanged; empty disables it)")
	f.DurationVar(&cfg.XDSDebounceWindow, "xds-debounce-window", 100*time.Millisecond, "a burst of changes becomes one xDS push once it pauses this long")
	f.DurationVar(&cfg.XDSDebounceMaxDelay, "xds-debounce-max-delay", time.Second, "longest a change waits for its xDS push while changes keep coming")
	f.DurationVar(&cfg.RegistryLeaseTTL, "registry-lease-ttl", 5*time.Second, "how long the health checks of a replica that dies wait before another replica takes them over")
	f.StringSliceVar(&cfg.EtcdEndpoints, "etcd-endpoints", nil, "use this external etcd cluster (comma-separated client URLs) instead of the embedded etcd")
	f.StringVar(&cfg.EtcdClientAddr, "etcd-client-addr", "", "loopback host:port of the embedded etcd's client listener (default: a free port)")
	f.StringVar(&cfg.EtcdPeerAddr, "etcd-peer-addr", "", "loopback host:port of the embedded etcd's peer listener (default: a free port)")
	f.StringVar(&cfg.TokenFile, "token-file", "", "file of API bearer tokens, one \"token,role[,name]\" per line (role admin or read)")
	f.BoolVar(&cfg.Insecure, "insecure", false, "allow serving a non-loopback --http-addr without --token-file")
	f.Int64Var(&cfg.MaxBodyBytes, "max-body-bytes", apiserver.DefaultMaxBodyBytes, "largest request body the API accepts")
	f.DurationVar(&cfg.RequestTimeout, "request-timeout", apiserver.DefaultRequestTimeout, "longest an API request other than a watch may take")
	f.DurationVar(&cfg.BookmarkInterval, "watch-bookmark-interval", defaultBookmarkInterval, "how often watch streams receive a BOOKMARK")
	f.DurationVar(&cfg.CompactInterval, "compact-interval", defaultCompactInterval, "compact etcd history older than this, this often (0 disables)")
	f.DurationVar(&cfg.DefragInterval, "defrag-interval", defaultDefragInterval, "check the embedded etcd for space to reclaim this often (0 disables)")
	f.Int64Var(&cfg.DefragThreshold, "defrag-threshold-bytes", 64<<20, "defragment the embedded etcd when this many bytes are free")
	f.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", defaultShutdownTimeout, "how long in-flight requests may take to finish at shutdown")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	f.StringVar(&logFormat, "log-format", "text", "log format: text or json")
	return cmd
}

func newLogger(level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	default:
		return nil, fmt.Errorf("--log-format %q: want text or json", format)
	}
}
