package gateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/credentials"
)

// Span attributes: the OpenTelemetry HTTP semantic conventions, and
// Sluice's own.
const (
	attrMethod       = attribute.Key("http.request.method")
	attrStatus       = attribute.Key("http.response.status_code")
	attrResendCount  = attribute.Key("http.request.resend_count")
	attrURLPath      = attribute.Key("url.path")
	attrURLFull      = attribute.Key("url.full")
	attrServerAddr   = attribute.Key("server.address")
	attrServerPort   = attribute.Key("server.port")
	attrErrorType    = attribute.Key("error.type")
	attrRoute        = attribute.Key("sluice.route")
	attrCluster      = attribute.Key("sluice.cluster")
	attrUpstream     = attribute.Key("sluice.upstream")
	attrListener     = attribute.Key("sluice.listener")
	attrMirror       = attribute.Key("sluice.mirror")
	attrServiceName  = attribute.Key("service.name")
	attrServiceVer   = attribute.Key("service.version")
	attrServiceInst  = attribute.Key("service.instance.id")
	tracerName       = "github.com/sluice/sluice/internal/gateway"
	tracingFlushTime = 5 * time.Second
)

// The OTLP protocols, named as OTEL_EXPORTER_OTLP_PROTOCOL names them.
const (
	otlpGRPC = "grpc"
	otlpHTTP = "http/protobuf"
)

// tracing is the gateway's OpenTelemetry tracing: a span per request and a
// child span per upstream attempt and mirror, exported over OTLP.
// A nil *tracing is tracing off: requests carry their traceparent to the
// upstream unchanged, and nothing else is done.
type tracing struct {
	provider *sdktrace.TracerProvider
	tracer   trace.Tracer
	prop     propagation.TraceContext
}

// newTracing builds the tracer provider of opts: an OTLP exporter to
// opts.OTLPEndpoint (connected lazily), a batch span processor and a
// parent-based ratio sampler. It returns nil when no endpoint is set.
func newTracing(ctx context.Context, opts Options) (*tracing, error) {
	if opts.OTLPEndpoint == "" {
		return nil, nil
	}
	exp, err := newExporter(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("gateway: OTLP exporter: %w", err)
	}
	res := resource.NewSchemaless(
		attrServiceName.String("sluice-gateway"),
		attrServiceVer.String(opts.Version),
		attrServiceInst.String(opts.NodeID),
	)
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(opts.TraceSampleRatio))),
	)
	return &tracing{provider: tp, tracer: tp.Tracer(tracerName, trace.WithInstrumentationVersion(opts.Version))}, nil
}

// newExporter is the OTLP exporter of opts, over gRPC or HTTP. Both
// exporters also read OpenTelemetry's environment for what the flags do
// not set: OTEL_EXPORTER_OTLP_HEADERS (or _TRACES_HEADERS) carries the
// headers a hosted collector wants, its token among them, which belongs
// there rather than in a flag that ps shows; OTEL_EXPORTER_OTLP_TIMEOUT
// and _COMPRESSION work too. The flags win over the environment for the
// endpoint and its TLS.
func newExporter(ctx context.Context, opts Options) (sdktrace.SpanExporter, error) {
	addr, tlsCfg, err := otlpTarget(opts.OTLPEndpoint, opts.OTLPCAFile)
	if err != nil {
		return nil, err
	}
	if opts.OTLPProtocol == otlpHTTP {
		conn := otlptracehttp.WithInsecure()
		if tlsCfg != nil {
			conn = otlptracehttp.WithTLSClientConfig(tlsCfg)
		}
		return otlptracehttp.New(ctx, otlptracehttp.WithEndpoint(addr), conn)
	}
	conn := otlptracegrpc.WithInsecure()
	if tlsCfg != nil {
		conn = otlptracegrpc.WithTLSCredentials(credentials.NewTLS(tlsCfg))
	}
	return otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(addr), conn)
}

// otlpTarget reads an OTLP endpoint as the OpenTelemetry exporters do:
// host:port or http://host:port is plaintext, https://host:port is TLS,
// verified against caFile's certificates when set, else the system's.
// tlsCfg is nil for plaintext.
func otlpTarget(endpoint, caFile string) (addr string, tlsCfg *tls.Config, err error) {
	scheme, rest, found := strings.Cut(endpoint, "://")
	if !found {
		scheme, rest = "", endpoint
	}
	if _, _, err := net.SplitHostPort(rest); err != nil || strings.Contains(rest, "/") {
		return "", nil, fmt.Errorf("gateway: --otlp-endpoint %q: want host:port, http://host:port or https://host:port", endpoint)
	}
	switch scheme {
	case "", "http":
		if caFile != "" {
			return "", nil, fmt.Errorf("gateway: --otlp-ca-file needs an https:// --otlp-endpoint (%q is plaintext)", endpoint)
		}
		return rest, nil, nil
	case "https":
	default:
		return "", nil, fmt.Errorf("gateway: --otlp-endpoint %q: scheme %q, want http or https", endpoint, scheme)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return "", nil, fmt.Errorf("gateway: --otlp-ca-file: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return "", nil, fmt.Errorf("gateway: --otlp-ca-file %s: no PEM certificate in it", caFile)
		}
	}
	return rest, cfg, nil
}

// shutdown flushes the spans not yet exported and stops the exporter.
func (t *tracing) shutdown() error {
	if t == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), tracingFlushTime)
	defer cancel()
	if err := t.provider.Shutdown(ctx); err != nil {
		return fmt.Errorf("gateway: flushing spans: %w", err)
	}
	return nil
}

// startServer starts the span of a request, continuing the caller's trace
// when it sent a traceparent. The span is named after the route once one
// matched (finishServer).
func (t *tracing) startServer(r *http.Request) (*http.Request, trace.Span) {
	ctx := t.prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	ctx, span := t.tracer.Start(ctx, r.Method, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(
			attrMethod.String(r.Method),
			attrURLPath.String(r.URL.Path),
			attrServerAddr.String(stripPort(r.Host)),
		))
	return r.WithContext(ctx), span
}

// finishServer names a request's span after its route, records what the
// request learned and its status, and ends it.
func finishServer(span trace.Span, info *request, status int) {
	if info.route != "" {
		span.SetName(info.route)
	}
	span.SetAttributes(
		attrStatus.Int(status),
		attrListener.String(info.listener),
		attrRoute.String(info.route),
		attrCluster.String(info.cluster),
		attrUpstream.String(info.endpoint),
	)
	if status >= 500 {
		span.SetStatus(codes.Error, "")
		span.SetAttributes(attrErrorType.String(strconv.Itoa(status)))
	}
	span.End()
}

// startAttempt starts the client span of one upstream attempt (or mirror)
// as a child of the request's span, and injects its traceparent into the
// outgoing headers.
func (t *tracing) startAttempt(ctx context.Context, out *http.Request, cluster, addr string, attempt int, mirror bool) trace.Span {
	name := "upstream " + cluster
	if mirror {
		name = "mirror " + cluster
	}
	attrs := []attribute.KeyValue{
		attrMethod.String(out.Method),
		attrURLFull.String(out.URL.String()),
		attrCluster.String(cluster),
		attrUpstream.String(addr),
	}
	if host, port, err := net.SplitHostPort(addr); err == nil {
		attrs = append(attrs, attrServerAddr.String(host))
		if p, err := strconv.Atoi(port); err == nil {
			attrs = append(attrs, attrServerPort.Int(p))
		}
	}
	if attempt > 0 {
		attrs = append(attrs, attrResendCount.Int(attempt))
	}
	if mirror {
		attrs = append(attrs, attrMirror.Bool(true))
	}
	ctx, span := t.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
	t.prop.Inject(ctx, propagation.HeaderCarrier(out.Header))
	return span
}

// finishAttempt records the outcome of an attempt and ends its span.
func finishAttempt(span trace.Span, status int, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
		var se *StatusError
		errType := "error"
		switch {
		case errors.As(err, &se):
			errType = strconv.Itoa(se.Code)
		case errors.Is(err, context.Canceled):
			errType = "canceled"
		}
		span.SetAttributes(attrErrorType.String(errType))
	} else {
		span.SetAttributes(attrStatus.Int(status))
		if status >= 400 {
			span.SetStatus(codes.Error, "")
			span.SetAttributes(attrErrorType.String(strconv.Itoa(status)))
		}
	}
	span.End()
}
