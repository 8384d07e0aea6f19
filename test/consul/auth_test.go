package consule2e

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/consul/api"

	"github.com/sluice/sluice/internal/server"
)

// TestTokens: with a token file, a request without a token or with an
// unknown one gets Consul's 403 "ACL not found", a read token reads but
// cannot register, and an admin token does everything.
func TestTokens(t *testing.T) {
	t.Parallel()
	const admin, read = "admin-token-0123456789", "read-token-0123456789"
	file := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(file, []byte(admin+",admin\n"+read+",read\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := start(t, server.Config{TokenFile: file}, admin)
	reg := &api.AgentServiceRegistration{ID: "sec-1", Name: "sec", Address: "127.0.0.1", Port: 443}
	if err := s.consul.Agent().ServiceRegister(reg); err != nil {
		t.Fatalf("register with the admin token: %v", err)
	}

	forbidden := func(t *testing.T, what string, err error, body string) {
		t.Helper()
		var se api.StatusError
		if !errors.As(err, &se) || se.Code != 403 || se.Body != body {
			t.Errorf("%s: %v, want 403 %q", what, err, body)
		}
	}
	for _, token := range []string{"", "not-a-token-0123456789"} {
		c := consulClient(t, s.srv.ConsulAddr, token)
		_, _, err := c.Catalog().Services(nil)
		forbidden(t, "catalog services with token "+token, err, "ACL not found")
		forbidden(t, "register with token "+token, c.Agent().ServiceRegister(reg), "ACL not found")
	}

	reader := consulClient(t, s.srv.ConsulAddr, read)
	services, _, err := reader.Catalog().Services(nil)
	if err != nil || len(services["sec"]) != 0 || services["sec"] == nil {
		t.Errorf("catalog services with the read token: %v, %v; want sec", services, err)
	}
	forbidden(t, "register with the read token", reader.Agent().ServiceRegister(reg), "Permission denied")
	forbidden(t, "deregister with the read token", reader.Agent().ServiceDeregister("sec-1"), "Permission denied")

	// Status needs no token, as in Consul.
	anonymous := consulClient(t, s.srv.ConsulAddr, "")
	if leader, err := anonymous.Status().Leader(); err != nil || leader == "" {
		t.Errorf("status leader without a token: %q, %v", leader, err)
	}
}

// TestNetworkAddressNeedsTokens: the Consul API on a non-loopback address
// needs a token file (or --insecure), as the main API does.
func TestNetworkAddressNeedsTokens(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	err := server.New(server.Config{DataDir: dir, HTTPAddr: "127.0.0.1:0", XDSAddr: "127.0.0.1:0", ConsulAddr: "0.0.0.0:0"}).Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "refusing to serve the Consul-compatible API on 0.0.0.0:0") ||
		!strings.Contains(err.Error(), "--token-file") || !strings.Contains(err.Error(), "--insecure") {
		t.Fatalf("Run with --consul-addr 0.0.0.0:0 and no tokens: %v", err)
	}
	if _, statErr := os.Stat(dir); !os.IsNotExist(statErr) {
		t.Errorf("the refused server created its data dir")
	}
}
