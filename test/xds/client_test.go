package xdse2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// rpc is the outcome of one RPC of a client.
type rpc struct {
	at time.Time // when the test read its line
	// server is the ServerId that answered; empty when the RPC failed.
	server string
	// err is "<code> <message>" for a failed RPC.
	err string
}

// proxyless is a testclient child process: one xDS node sending RPCs.
type proxyless struct {
	t      *testing.T
	node   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr string        // the file of its stderr
	exited chan struct{} // closed when the process has exited

	mu   sync.Mutex // guards rpcs
	rpcs []rpc
}

var nodeSeq atomic.Int64

// clientOptions shape a client's traffic.
type clientOptions struct {
	// rate is RPCs per second; 0 sends them back to back.
	rate float64
}

// startClient runs a proxyless client of the server at xdsAddr dialing
// target, as a node of its own; it is stopped at cleanup.
func startClient(t *testing.T, xdsAddr string, opts clientOptions) *proxyless {
	t.Helper()
	node := fmt.Sprintf("%s-%d", strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")), nodeSeq.Add(1))
	bootstrap, err := json.Marshal(map[string]any{
		"xds_servers": []any{map[string]any{
			"server_uri":      xdsAddr,
			"channel_creds":   []any{map[string]any{"type": "insecure"}},
			"server_features": []any{},
		}},
		"node": map[string]any{"id": node, "locality": map[string]any{"zone": "a"}},
		"client_default_listener_resource_name_template": "%s",
	})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(testclientBin, "-target", target, "-rate", fmt.Sprint(opts.rate), "-timeout", "2s")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GRPC_XDS_BOOTSTRAP") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "GRPC_XDS_BOOTSTRAP_CONFIG="+string(bootstrap))
	c := &proxyless{t: t, node: node, cmd: cmd, stderr: filepath.Join(t.TempDir(), node+".stderr"), exited: make(chan struct{})}
	stderr, err := os.Create(c.stderr)
	if err != nil {
		t.Fatal(err)
	}
	// Closed once the process has exited (see read): with a MultiWriter,
	// exec copies to it until then.
	cmd.Stderr = stderr
	if os.Getenv("GRPC_GO_LOG_SEVERITY_LEVEL") != "" {
		// Debugging: show grpc's logs as they come.
		cmd.Stderr = io.MultiWriter(stderr, os.Stderr)
	}
	if c.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		stderr.Close()
		t.Fatal(err)
	}
	go func() {
		c.read(stdout)
		stderr.Close()
		close(c.exited)
	}()
	t.Cleanup(c.stop)
	return c
}

// read records every line of the client's stdout.
func (c *proxyless) read(stdout io.Reader) {
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		r := rpc{at: time.Now()}
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "ok "):
			r.server = strings.TrimPrefix(line, "ok ")
		case strings.HasPrefix(line, "err "):
			r.err = strings.TrimPrefix(line, "err ")
		default:
			r.err = "unexpected output " + line
		}
		c.mu.Lock()
		c.rpcs = append(c.rpcs, r)
		c.mu.Unlock()
	}
	c.cmd.Wait()
}

// stop ends the client by closing its stdin, killing it if it lingers.
func (c *proxyless) stop() {
	c.stdin.Close()
	select {
	case <-c.exited:
	case <-time.After(5 * time.Second):
		c.cmd.Process.Kill()
		<-c.exited
	}
	if c.t.Failed() {
		c.t.Logf("client %s stderr:\n%s", c.node, c.stderrText())
	}
}

// stderrText is what the client wrote to stderr so far.
func (c *proxyless) stderrText() string {
	data, _ := os.ReadFile(c.stderr)
	return string(data)
}

// mark returns the number of RPCs recorded so far, to look at later ones.
func (c *proxyless) mark() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.rpcs)
}

// since returns the RPCs recorded after a mark.
func (c *proxyless) since(mark int) []rpc {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]rpc(nil), c.rpcs[mark:]...)
}

// waitRPCs polls the RPCs after mark until cond holds, and returns them.
// It fails the test after timeout, or if the client exits.
func (c *proxyless) waitRPCs(mark int, what string, timeout time.Duration, cond func([]rpc) bool) []rpc {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		rs := c.since(mark)
		if cond(rs) {
			return rs
		}
		select {
		case <-c.exited:
			c.t.Fatalf("client %s exited before %s; its RPCs: %s\nstderr:\n%s", c.node, what, tally(rs), c.stderrText())
		default:
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("client %s: %s: not within %v; its %d RPCs since: %s", c.node, what, timeout, len(rs), tally(rs))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitConverged waits for the client's first successful RPC.
func (c *proxyless) waitConverged() {
	c.t.Helper()
	c.waitRPCs(0, "a first successful RPC", 20*time.Second, func(rs []rpc) bool {
		for _, r := range rs {
			if r.server != "" {
				return true
			}
		}
		return false
	})
}

// next waits for n RPCs after mark and returns exactly those.
func (c *proxyless) next(mark, n int, timeout time.Duration) []rpc {
	c.t.Helper()
	rs := c.waitRPCs(mark, fmt.Sprintf("%d RPCs", n), timeout, func(rs []rpc) bool { return len(rs) >= n })
	return rs[:n]
}

// waitGone waits until the servers gone selects stop answering: until the
// last quiet RPCs after mark succeeded on other servers. It returns how
// long after start the switch happened: the time of the first RPC after the
// last one gone answered (or of the first RPC after mark if none did).
// Every RPC after mark must succeed.
func (c *proxyless) waitGone(mark int, start time.Time, what string, gone func(server string) bool, quiet int, timeout time.Duration) time.Duration {
	c.t.Helper()
	var switched time.Time
	c.waitRPCs(mark, what, timeout, func(rs []rpc) bool {
		if failed := failures(rs); len(failed) > 0 {
			c.t.Fatalf("client %s: %d RPCs failed while waiting until %s, first: %q; all since: %s", c.node, len(failed), what, failed[0].err, tally(rs))
		}
		last := -1
		for i, r := range rs {
			if gone(r.server) {
				last = i
			}
		}
		if len(rs)-(last+1) < quiet {
			return false
		}
		switched = rs[last+1].at
		return true
	})
	return max(switched.Sub(start), 0)
}

// waitAnswer waits until server answers an RPC after mark, and returns how
// long after start it first did. Every RPC after mark must succeed.
func (c *proxyless) waitAnswer(mark int, start time.Time, server, what string, timeout time.Duration) time.Duration {
	c.t.Helper()
	answered := func(r rpc) bool { return r.server == server }
	rs := c.waitRPCs(mark, what, timeout, func(rs []rpc) bool { return slices.ContainsFunc(rs, answered) })
	if f := failures(rs); len(f) > 0 {
		c.t.Fatalf("client %s: %d RPCs failed while waiting until %s, first: %q; all since: %s", c.node, len(f), what, f[0].err, tally(rs))
	}
	return rs[slices.IndexFunc(rs, answered)].at.Sub(start)
}

// failures returns the failed RPCs.
func failures(rs []rpc) []rpc {
	var out []rpc
	for _, r := range rs {
		if r.server == "" {
			out = append(out, r)
		}
	}
	return out
}

// count returns how many RPCs each key answered, e.g. by ServerId or by
// version; failed RPCs count under "error".
func count(rs []rpc, key func(server string) string) map[string]int {
	n := map[string]int{}
	for _, r := range rs {
		if r.server == "" {
			n["error"]++
		} else {
			n[key(r.server)]++
		}
	}
	return n
}

// tally describes RPCs for failure messages: counts by ServerId and the
// first error.
func tally(rs []rpc) string {
	n := count(rs, func(s string) string { return s })
	keys := make([]string, 0, len(n))
	for k := range n {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, n[k]))
	}
	s := "{" + strings.Join(parts, " ") + "}"
	if f := failures(rs); len(f) > 0 {
		s += fmt.Sprintf(", first error: %q", f[0].err)
	}
	return s
}
