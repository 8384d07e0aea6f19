package main

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluice/sluice/internal/gateway"
	"github.com/sluice/sluice/internal/heapfloor"
)

// gatewayHeapFloor is the heap goal below which the gateway's garbage
// collector does not run: at a few KiB allocated per request and a live heap
// of a few MiB, GOGC=100 alone collects several times a second under load.
const gatewayHeapFloor = 64 << 20

func newGatewayCommand() *cobra.Command {
	var (
		opts      gateway.Options
		logLevel  string
		logFormat string
		accessLog string
	)
	cmd := &cobra.Command{
		Use:   "gateway",
		Short: "Run the L7 gateway serving a Gateway resource, configured over xDS by sluice server",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := newLogger(logLevel, logFormat)
			if err != nil {
				return err
			}
			opts.Logger, opts.Version = log, version
			switch accessLog {
			case "":
			case "stdout":
				opts.AccessLog = cmd.OutOrStdout()
			case "stderr":
				opts.AccessLog = cmd.ErrOrStderr()
			default:
				f, err := os.OpenFile(accessLog, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
				if err != nil {
					return fmt.Errorf("--access-log: %w", err)
				}
				defer f.Close()
				opts.AccessLog = f
			}
			g, err := gateway.New(opts)
			if err != nil {
				return err
			}
			// A user who set GOGC chose the collector's pace.
			if os.Getenv("GOGC") == "" {
				defer heapfloor.Start(gatewayHeapFloor).Stop()
			}
			return g.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.XDSServer, "xds-server", "127.0.0.1:18000", "host:port of sluice server's xDS (ADS) address")
	f.StringVar(&opts.Gateway, "gateway", "", "the Gateway resource this process serves, NAMESPACE/NAME (required)")
	f.StringVar(&opts.NodeID, "node-id", "", "xDS node id (default <namespace>-<name>-<hostname>-<pid>)")
	f.StringVar(&opts.BindAddress, "bind-address", "0.0.0.0", "address the listeners bind on, at the ports of the Gateway's listeners")
	f.StringVar(&opts.AdminAddr, "admin-addr", "127.0.0.1:9901", "address of the admin server (/ready, /stats, /config_dump); empty disables it")
	f.DurationVar(&opts.DrainTimeout, "drain-timeout", 15*time.Second, "how long a removed listener, or the gateway at shutdown, waits for requests in flight")
	f.StringVar(&opts.OTLPEndpoint, "otlp-endpoint", "", "OTLP trace receiver: host:port or http://host:port (plaintext), https://host:port (TLS); empty turns tracing off, and a request's traceparent then reaches the upstream unchanged. Headers (a token) come from OTEL_EXPORTER_OTLP_HEADERS")
	f.StringVar(&opts.OTLPProtocol, "otlp-protocol", "grpc", "OTLP protocol: grpc (port 4317) or http/protobuf (port 4318, path /v1/traces)")
	f.StringVar(&opts.OTLPCAFile, "otlp-ca-file", "", "PEM certificates to verify an https --otlp-endpoint against (default: the system's)")
	f.Float64Var(&opts.TraceSampleRatio, "trace-sample-ratio", 1.0, "fraction, 0 to 1, of the traces started at the gateway that are sampled; a request with a traceparent follows its caller's sampling decision")
	f.StringVar(&accessLog, "access-log", "", "write a JSON line per request to stdout, stderr or this file (empty: no access log)")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	f.StringVar(&logFormat, "log-format", "text", "log format: text or json")
	_ = cmd.MarkFlagRequired("gateway")
	return cmd
}
