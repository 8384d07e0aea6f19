package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// body is what the upstream answers: small, so that the proxies' own work
// is what is measured.
const body = "hello, world\n"

// upstream is the HTTP server every target forwards to.
func startUpstream() (addr string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, body)
	}), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	return ln.Addr().String(), func() { srv.Close() }, nil
}

// freePort returns a loopback port nobody listens on (for programs that
// take a port on their command line or in a config file).
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// process is a program a target runs, stopped at the end.
type process struct {
	name string
	cmd  *exec.Cmd
	out  syncBuffer
	done chan struct{} // closed when it has exited
}

// startProcess runs args in dir, with env added to this process's.
func startProcess(ctx context.Context, name, dir string, env []string, args ...string) (*process, error) {
	p := &process{name: name, cmd: exec.CommandContext(ctx, args[0], args[1:]...), done: make(chan struct{})}
	p.cmd.Dir = dir
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
	p.cmd.Cancel = func() error { return p.cmd.Process.Signal(os.Interrupt) }
	p.cmd.WaitDelay = 5 * time.Second
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	go func() {
		p.cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *process) stop() {
	p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// syncBuffer is a bytes.Buffer a process writes while the bench reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitServing polls url until it answers 200 with the upstream's body.
func waitServing(ctx context.Context, url string, procs ...*process) error {
	deadline := time.Now().Add(60 * time.Second)
	c := &http.Client{Timeout: time.Second}
	for {
		resp, err := c.Get(url)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && string(b) == body {
				return nil
			}
			err = fmt.Errorf("answered %d %q", resp.StatusCode, b)
		}
		for _, p := range procs {
			if p.exited() {
				return fmt.Errorf("%s exited: %s", p.name, p.out.String())
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			var out []string
			for _, p := range procs {
				out = append(out, p.name+": "+p.out.String())
			}
			return fmt.Errorf("%s does not serve after 60s: %v\n%s", url, err, strings.Join(out, "\n"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// startNginx runs nginx as a keep-alive reverse proxy to upstream, with as
// many workers as CPUs (nginx's own recommendation).
func startNginx(ctx context.Context, nginx, dir, upstream string) (url string, p *process, err error) {
	port, err := freePort()
	if err != nil {
		return "", nil, err
	}
	conf := fmt.Sprintf(`worker_processes auto;
user root;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 4096; }
http {
	access_log off;
	client_body_temp_path %[1]s/body;
	proxy_temp_path %[1]s/proxy;
	fastcgi_temp_path %[1]s/fastcgi;
	uwsgi_temp_path %[1]s/uwsgi;
	scgi_temp_path %[1]s/scgi;
	upstream backend {
		server %[2]s;
		keepalive 512;
	}
	server {
		listen 127.0.0.1:%[3]d;
		location / {
			proxy_pass http://backend;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
		}
	}
}
`, dir, upstream, port)
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return "", nil, err
	}
	p, err = startProcess(ctx, "nginx", dir, nil, nginx, "-c", path, "-p", dir, "-g", "daemon off;")
	if err != nil {
		return "", nil, err
	}
	url = fmt.Sprintf("http://127.0.0.1:%d/", port)
	return url, p, waitServing(ctx, url, p)
}

// startCaddy runs Caddy's reverse_proxy to upstream, keeping as many idle
// connections to it as nginx does (Caddy's default keeps 32), with its
// admin API and automatic HTTPS off.
func startCaddy(ctx context.Context, caddy, dir, upstream string) (url string, p *process, err error) {
	port, err := freePort()
	if err != nil {
		return "", nil, err
	}
	// As many idle upstream connections kept as nginx's keepalive 512.
	conf := fmt.Sprintf(`{
	admin off
	auto_https off
}
http://127.0.0.1:%d {
	reverse_proxy %s {
		transport http {
			keepalive_idle_conns 512
			keepalive_idle_conns_per_host 512
		}
	}
}
`, port, upstream)
	path := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return "", nil, err
	}
	p, err = startProcess(ctx, "caddy", dir, []string{"XDG_DATA_HOME=" + dir, "XDG_CONFIG_HOME=" + dir},
		caddy, "run", "--config", path, "--adapter", "caddyfile")
	if err != nil {
		return "", nil, err
	}
	url = fmt.Sprintf("http://127.0.0.1:%d/", port)
	return url, p, waitServing(ctx, url, p)
}

// errNoGateway says the sluice binary has no gateway command yet.
var errNoGateway = errors.New("this sluice has no `gateway` command")

// startSluice builds the sluice binary, runs `sluice server`, applies a
// Gateway (class sluice, one HTTP listener), an HTTPRoute, a Service and an
// Endpoint for the upstream, and runs `sluice gateway` for that Gateway.
func startSluice(ctx context.Context, dir, upstream string) (url string, procs []*process, err error) {
	bin := filepath.Join(dir, "sluice")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/sluice")
	build.Dir, err = moduleRoot()
	if err != nil {
		return "", nil, err
	}
	if out, err := build.CombinedOutput(); err != nil {
		return "", nil, fmt.Errorf("building sluice: %w\n%s", err, out)
	}
	if out, _ := exec.CommandContext(ctx, bin, "gateway", "--help").CombinedOutput(); !bytes.Contains(out, []byte("--xds-server")) {
		return "", nil, errNoGateway
	}
	var ports [4]int
	for i := range ports {
		if ports[i], err = freePort(); err != nil {
			return "", nil, err
		}
	}
	api, xds, gwPort, admin := ports[0], ports[1], ports[2], ports[3]
	server, err := startProcess(ctx, "sluice server", dir, nil, bin, "server", "--data-dir", filepath.Join(dir, "data"),
		"--http-addr", fmt.Sprintf("127.0.0.1:%d", api), "--xds-addr", fmt.Sprintf("127.0.0.1:%d", xds), "--consul-addr", "")
	if err != nil {
		return "", nil, err
	}
	procs = append(procs, server)
	apiURL := fmt.Sprintf("http://127.0.0.1:%d", api)
	if err := waitReady(ctx, apiURL+"/readyz", server); err != nil {
		return "", procs, err
	}
	host, port, _ := net.SplitHostPort(upstream)
	manifest := fmt.Sprintf(`apiVersion: sluice.io/v1alpha1
kind: Service
metadata: {name: upstream}
spec:
  selector: {app: upstream}
  ports: [{name: http, port: %[2]s, protocol: http}]
---
apiVersion: sluice.io/v1alpha1
kind: Endpoint
metadata: {name: upstream-1, labels: {app: upstream}}
spec: {address: %[1]s, ports: [{name: http, port: %[2]s}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: bench}
spec:
  gatewayClassName: sluice
  listeners: [{name: http, port: %[3]d, protocol: HTTP}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: bench}
spec:
  parentRefs: [{name: bench}]
  rules: [{backendRefs: [{name: upstream, port: %[2]s}]}]
`, host, port, gwPort)
	apply := exec.CommandContext(ctx, bin, "apply", "--server", apiURL, "-f", "-")
	apply.Stdin = strings.NewReader(manifest)
	if out, err := apply.CombinedOutput(); err != nil {
		return "", procs, fmt.Errorf("sluice apply: %w\n%s", err, out)
	}
	gw, err := startProcess(ctx, "sluice gateway", dir, nil, bin, "gateway", "--xds-server", fmt.Sprintf("127.0.0.1:%d", xds),
		"--gateway", "default/bench", "--bind-address", "127.0.0.1", "--admin-addr", fmt.Sprintf("127.0.0.1:%d", admin))
	if err != nil {
		return "", procs, err
	}
	procs = append(procs, gw)
	url = fmt.Sprintf("http://127.0.0.1:%d/", gwPort)
	return url, procs, waitServing(ctx, url, server, gw)
}

func waitReady(ctx context.Context, url string, p *process) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if p.exited() || time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%s not ready: %s", p.name, p.out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// moduleRoot is the directory of the sluice module's go.mod.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("run this from the sluice module (go env GOMOD is empty)")
	}
	return filepath.Dir(gomod), nil
}
