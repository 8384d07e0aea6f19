package e2e

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice/sluice/internal/server"
	"github.com/sluice/sluice/internal/servertest"
)

const (
	adminToken = "admin-token-0123456789"
	readToken  = "read-token-0123456789"
)

func TestServerFromEnvironmentAndConfigFile(t *testing.T) {
	t.Parallel()
	srv, c := startServer(t)
	c.ok("apply", "-f", services())
	const unreachable = "http://127.0.0.1:1"

	fromEnv := &cli{t: t, env: []string{"SLUICE_SERVER=" + srv.URL}}
	if got := names(t, fromEnv.ok("get", "svc")); len(got) != 3 {
		t.Errorf("get svc with SLUICE_SERVER = %v, want the 3 example Services", got)
	}

	config := filepath.Join(t.TempDir(), "sluice.yaml")
	write(t, config, "server: "+srv.URL+"\nnamespace: default\n")
	fromFile := &cli{t: t}
	if got := names(t, fromFile.ok("get", "svc", "--config", config)); len(got) != 3 {
		t.Errorf("get svc with --config = %v, want the 3 example Services", got)
	}
	fromEnvFile := &cli{t: t, env: []string{"SLUICE_CONFIG=" + config}}
	if got := names(t, fromEnvFile.ok("get", "svc")); len(got) != 3 {
		t.Errorf("get svc with SLUICE_CONFIG = %v, want the 3 example Services", got)
	}

	// The flag wins over the environment, which wins over the file.
	wrongEnv := &cli{t: t, server: srv.URL, env: []string{"SLUICE_SERVER=" + unreachable}}
	wrongEnv.ok("get", "svc")
	write(t, config, "server: "+unreachable+"\n")
	envOverFile := &cli{t: t, env: []string{"SLUICE_SERVER=" + srv.URL}}
	envOverFile.ok("get", "svc", "--config", config)
	(&cli{t: t}).fail([]string{"get", "svc", "--config", config}, "127.0.0.1:1", "connection refused")

	(&cli{t: t, server: "not-a-url"}).fail([]string{"get", "svc"}, `server URL "not-a-url": want http(s)://host:port`)
	(&cli{t: t}).fail([]string{"get", "svc", "--config", filepath.Join(t.TempDir(), "none.yaml")}, "config file")
}

func TestTokens(t *testing.T) {
	t.Parallel()
	tokens := filepath.Join(t.TempDir(), "tokens")
	write(t, tokens, adminToken+",admin,alice\n"+readToken+",read,bob\n")
	srv := servertest.Start(t, server.Config{TokenFile: tokens})
	anonymous := &cli{t: t, server: srv.URL}
	reader := &cli{t: t, server: srv.URL, env: []string{"SLUICE_TOKEN=" + readToken}}
	admin := &cli{t: t, server: srv.URL}

	anonymous.fail([]string{"get", "svc"}, "unauthorized: a bearer token is required")
	anonymous.fail([]string{"get", "svc", "--token", "not-a-token-at-all"}, "unauthorized: the bearer token is not valid")
	r := reader.fail([]string{"apply", "-f", examples()}, "forbidden", "bob has role read")
	if r.stdout != "" {
		t.Errorf("apply with a read token printed %q", r.stdout)
	}
	if out := admin.ok("apply", "-f", examples(), "--token", adminToken); !strings.Contains(out, "service/greeter created") {
		t.Errorf("apply with the admin token printed %q", out)
	}
	if got := names(t, reader.ok("get", "svc")); len(got) != 3 {
		t.Errorf("get svc with a read token = %v, want 3 Services", got)
	}
	reader.fail([]string{"delete", "svc", "greeter"}, "forbidden")
	reader.ok("get", "svc", "greeter")
}
