// Package e2e drives the real sluice binary, built once in TestMain, against
// real servers started in the test process (or as child processes where
// that is what a test is about), and checks what a user sees: output, errors
// and exit codes.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice/sluice/internal/server"
	"github.com/sluice/sluice/internal/servertest"
)

var (
	// binary is the sluice binary under test.
	binary string
	// root is the module's root directory.
	root string
)

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(run(m))
}

func run(m *testing.M) int {
	var err error
	if root, err = moduleRoot(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	dir, err := os.MkdirTemp("", "sluice-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	binary = filepath.Join(dir, "sluice")
	build := exec.Command("go", "build", "-o", binary, "./cmd/sluice")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: building sluice: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// moduleRoot walks up from the working directory to the directory of go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory")
		}
		dir = parent
	}
}

// examples is the directory of example manifests.
func examples() string { return filepath.Join(root, "examples") }

// commandTimeout bounds one run of the binary.
const commandTimeout = 30 * time.Second

// cli runs the binary as a user would, against one server.
type cli struct {
	t *testing.T
	// server is passed as --server unless empty.
	server string
	// env is added to the environment, which holds no other SLUICE_ variable.
	env []string
}

// startServer starts a server in the test process and returns a CLI that
// talks to it.
func startServer(t *testing.T) (*servertest.Server, *cli) {
	t.Helper()
	srv := servertest.Start(t, server.Config{})
	return srv, &cli{t: t, server: srv.URL}
}

// result is what one run of the binary did.
type result struct {
	args           []string
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("sluice %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(r.args, " "), r.code, r.stdout, r.stderr)
}

// command returns the command that runs the binary with args.
func (c *cli) command(ctx context.Context, args ...string) *exec.Cmd {
	if c.server != "" {
		args = append(args, "--server", c.server)
	}
	cmd := exec.CommandContext(ctx, binary, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SLUICE_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, c.env...)
	return cmd
}

// runStdin runs the binary with args and stdin to completion.
func (c *cli) runStdin(stdin string, args ...string) result {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := c.command(ctx, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(stdin), &stdout, &stderr
	err := cmd.Run()
	r := result{args: args, stdout: stdout.String(), stderr: stderr.String()}
	if err != nil {
		exit, ok := err.(*exec.ExitError)
		if !ok {
			c.t.Fatalf("sluice %s: %v", strings.Join(args, " "), err)
		}
		r.code = exit.ExitCode()
	}
	return r
}

func (c *cli) run(args ...string) result {
	c.t.Helper()
	return c.runStdin("", args...)
}

// ok runs the binary, expects success and returns its stdout.
func (c *cli) ok(args ...string) string {
	c.t.Helper()
	r := c.run(args...)
	if r.code != 0 {
		c.t.Fatalf("want exit 0, got %v", r)
	}
	return r.stdout
}

// fail runs the binary, expects exit code 1 and an error naming every want.
func (c *cli) fail(args []string, want ...string) result {
	c.t.Helper()
	r := c.run(args...)
	if r.code != 1 {
		c.t.Fatalf("want exit 1, got %v", r)
	}
	for _, w := range want {
		if !strings.Contains(r.stderr, w) {
			c.t.Errorf("stderr of sluice %s does not contain %q:\n%s", strings.Join(args, " "), w, r.stderr)
		}
	}
	return r
}

// background is a run of the binary that goes on while the test acts.
type background struct {
	t      *testing.T
	cmd    *exec.Cmd
	lines  chan string // stdout, line by line
	stderr *syncBuffer // all of stderr
	done   chan error  // Wait's result
}

// start runs the binary in the background; it is killed at cleanup if the
// test has not stopped it.
func (c *cli) start(args ...string) *background {
	c.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := c.command(ctx, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		c.t.Fatal(err)
	}
	b := &background{t: c.t, cmd: cmd, lines: make(chan string, 1000), stderr: &syncBuffer{}, done: make(chan error, 1)}
	cmd.Stderr = b.stderr
	if err := cmd.Start(); err != nil {
		cancel()
		c.t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			b.lines <- sc.Text()
		}
		close(b.lines)
		b.done <- cmd.Wait()
	}()
	c.t.Cleanup(cancel)
	return b
}

// expect waits for the next stdout lines, which must match patterns in
// order, failing the test after a deadline.
func (b *background) expect(patterns ...string) {
	b.t.Helper()
	b.expectSkipping("", patterns...)
}

// expectSkipping is expect, passing over the lines that match skip.
func (b *background) expectSkipping(skip string, patterns ...string) {
	b.t.Helper()
	deadline := time.After(20 * time.Second)
	for _, p := range patterns {
	next:
		select {
		case line, ok := <-b.lines:
			if !ok {
				b.t.Fatalf("output ended before a line matching %q; stderr:\n%s", p, b.stderr)
			}
			if skip != "" && regexp.MustCompile(skip).MatchString(line) {
				goto next
			}
			if !regexp.MustCompile(p).MatchString(line) {
				b.t.Fatalf("got line %q, want one matching %q; stderr:\n%s", line, p, b.stderr)
			}
		case <-deadline:
			b.t.Fatalf("no line matching %q within 20s; stderr:\n%s", p, b.stderr)
		}
	}
}

// interrupt sends SIGINT, as Ctrl-C does, and expects exit code 0.
func (b *background) interrupt() {
	b.t.Helper()
	if err := b.cmd.Process.Signal(os.Interrupt); err != nil {
		b.t.Fatal(err)
	}
	select {
	case err := <-b.done:
		if err != nil {
			b.t.Errorf("after SIGINT: %v, want exit 0; stderr:\n%s", err, b.stderr)
		}
	case <-time.After(10 * time.Second):
		b.t.Fatal("the command did not exit within 10s of SIGINT")
	}
}

// eventually polls cond until it holds, failing the test after a deadline.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// syncBuffer is a buffer that a command writes while a test reads it.
type syncBuffer struct {
	mu  sync.Mutex // guards buf
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
