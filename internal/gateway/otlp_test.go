package gateway

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice/sluice/internal/certtest"
)

// TestOTLPTarget: --otlp-endpoint's forms (plaintext, TLS) and the
// mistakes New refuses, each naming the flag.
func TestOTLPTarget(t *testing.T) {
	dir := t.TempDir()
	crt, _ := certtest.KeyPair(t, "collector")
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, crt, 0o600); err != nil {
		t.Fatal(err)
	}
	notPEM := filepath.Join(dir, "junk")
	if err := os.WriteFile(notPEM, []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		endpoint, ca string
		addr         string
		tls          bool
		err          string
	}{
		{endpoint: "127.0.0.1:4317", addr: "127.0.0.1:4317"},
		{endpoint: "http://collector:4317", addr: "collector:4317"},
		{endpoint: "https://collector:4317", addr: "collector:4317", tls: true},
		{endpoint: "https://collector:4317", ca: ca, addr: "collector:4317", tls: true},
		{endpoint: "collector", err: "--otlp-endpoint"},
		{endpoint: "https://collector:4317/v1/traces", err: "--otlp-endpoint"},
		{endpoint: "grpc://collector:4317", err: `scheme "grpc"`},
		{endpoint: "collector:4317", ca: ca, err: "--otlp-ca-file needs an https"},
		{endpoint: "https://collector:4317", ca: filepath.Join(dir, "missing"), err: "--otlp-ca-file"},
		{endpoint: "https://collector:4317", ca: notPEM, err: "no PEM certificate"},
	} {
		addr, creds, err := otlpTarget(tc.endpoint, tc.ca)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s (ca %q): err %v, want one with %q", tc.endpoint, tc.ca, err, tc.err)
			}
			continue
		}
		if err != nil || addr != tc.addr || (creds != nil) != tc.tls {
			t.Errorf("%s (ca %q): %q, TLS %v, %v; want %q, TLS %v", tc.endpoint, tc.ca, addr, creds != nil, err, tc.addr, tc.tls)
		}
	}
	// New refuses them before anything starts.
	if _, err := New(Options{XDSServer: "x:1", Gateway: "ns/gw", OTLPEndpoint: "ftp://x:1"}); err == nil {
		t.Error("New took --otlp-endpoint ftp://x:1")
	}
	if _, err := New(Options{XDSServer: "x:1", Gateway: "ns/gw", OTLPEndpoint: "x:1", OTLPProtocol: "http/json"}); err == nil || !strings.Contains(err.Error(), "--otlp-protocol") {
		t.Errorf("New took --otlp-protocol http/json: %v", err)
	}
	if _, err := New(Options{XDSServer: "x:1", Gateway: "ns/gw", OTLPCAFile: ca}); err == nil {
		t.Error("New took --otlp-ca-file without --otlp-endpoint")
	}
}
