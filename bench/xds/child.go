package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"time"

	"github.com/sluice/sluice/bench/internal/harness"
)

// The simulated clients run in a child process (this same binary, started
// with roleEnv=clients), so that the server process's memory and CPU are
// the server's alone. Parent and child speak JSON lines: the parent writes
// the clientConfig, then commands, on the child's stdin; the child answers
// on its stdout. Times are CLOCK_MONOTONIC nanoseconds, one clock for both.

// roleEnv selects the role of the process: "clients" runs a fleet. It is an
// environment variable rather than a flag so that the test binary can be
// the child too (see TestMain).
const roleEnv = "SLUICE_BENCH_XDS_ROLE"

// command is one instruction to the child.
type command struct {
	// Op is "await" (follow the clients until each holds Want; with Connect,
	// connect them first) or "quit".
	Op      string        `json:"op"`
	Seq     int           `json:"seq"`
	Want    state         `json:"want,omitempty"`
	Connect bool          `json:"connect,omitempty"`
	Timeout time.Duration `json:"timeout,omitempty"`
}

// reply is one answer of the child: Armed when it follows the clients for
// a command (the parent may make its change), then the result.
type reply struct {
	Seq   int  `json:"seq"`
	Armed bool `json:"armed,omitempty"`
	// Start is when the command was armed.
	Start int64 `json:"start,omitempty"`
	// Times are, per client, when it sent the ACK that gave it the wanted
	// state.
	Times []int64 `json:"times,omitempty"`
	// CPU is the child's CPU time between arming and the result (user +
	// system), or for "quit" over its whole life.
	CPU time.Duration `json:"cpu,omitempty"`
	// Responses counts the responses all clients received, by type,
	// between arming and the result.
	Responses map[string]int `json:"responses,omitempty"`
	// RSS is the child's resident memory, on "quit".
	RSS int64  `json:"rss,omitempty"`
	Err string `json:"err,omitempty"`
}

// clientsMain is the child process: it reads its config and commands on
// stdin and answers on stdout until "quit" or the end of stdin.
func clientsMain() int {
	if err := clientsLoop(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench/xds clients:", err)
		return 1
	}
	return 0
}

func clientsLoop(in io.Reader, out io.Writer) error {
	dec := json.NewDecoder(bufio.NewReader(in))
	var cfg clientConfig
	if err := dec.Decode(&cfg); err != nil {
		return fmt.Errorf("reading the config: %w", err)
	}
	if err := raiseFileLimit(uint64(cfg.N)+256, "clients"); err != nil {
		return err
	}
	var mu sync.Mutex // guards enc
	enc := json.NewEncoder(out)
	send := func(r reply) {
		mu.Lock()
		defer mu.Unlock()
		enc.Encode(r)
	}
	f := newFleet(cfg)
	defer f.stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var pending sync.WaitGroup
	defer pending.Wait()
	for {
		var cmd command
		if err := dec.Decode(&cmd); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("reading a command: %w", err)
		}
		switch cmd.Op {
		case "await":
			w := f.arm(cmd.Want)
			resp0 := f.responseCounts()
			cpu0 := cpuTime()
			start := monoNow()
			send(reply{Seq: cmd.Seq, Armed: true, Start: start})
			if cmd.Connect {
				f.start()
			}
			pending.Go(func() {
				times, err := f.await(ctx, w, cmd.Timeout)
				r := reply{Seq: cmd.Seq, Start: start, Times: times, CPU: cpuTime() - cpu0, Responses: f.responseCounts()}
				for t, n := range resp0 {
					r.Responses[t] -= n
				}
				if err != nil {
					r.Err = err.Error()
				}
				send(r)
			})
		case "quit":
			cancel()
			pending.Wait()
			f.stop()
			send(reply{Seq: cmd.Seq, CPU: cpuTime(), RSS: rss()})
			return nil
		default:
			return fmt.Errorf("unknown command %q", cmd.Op)
		}
	}
}

// clientProc is the parent's handle on a child process of clients.
type clientProc struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	enc     *json.Encoder
	replies chan reply
	seq     int
	// CPU and RSS are the child's, once it has quit.
	CPU time.Duration
	RSS int64
}

// startClients starts a child process running cfg.N clients; they connect
// with the first await with connect set.
func startClients(cfg clientConfig) (*clientProc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("finding this program to start the clients: %w", err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), roleEnv+"=clients")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the clients' process: %w", err)
	}
	p := &clientProc{cmd: cmd, stdin: stdin, enc: json.NewEncoder(stdin), replies: make(chan reply, 4)}
	go func() {
		defer close(p.replies)
		dec := json.NewDecoder(bufio.NewReader(stdout))
		for {
			var r reply
			if err := dec.Decode(&r); err != nil {
				return
			}
			p.replies <- r
		}
	}()
	if err := p.enc.Encode(cfg); err != nil {
		p.kill()
		return nil, fmt.Errorf("configuring the clients: %w", err)
	}
	return p, nil
}

// arm tells the child to follow its clients until each holds want (and,
// with connect, to connect them), and returns when it does.
func (p *clientProc) arm(want state, connect bool, timeout time.Duration) error {
	p.seq++
	if err := p.enc.Encode(command{Op: "await", Seq: p.seq, Want: want, Connect: connect, Timeout: timeout}); err != nil {
		return fmt.Errorf("clients' process: %w", err)
	}
	r, err := p.next(10 * time.Second)
	if err != nil {
		return err
	}
	if !r.Armed || r.Seq != p.seq {
		return fmt.Errorf("clients' process answered %+v, want armed %d", r, p.seq)
	}
	return nil
}

// result waits for the outcome of the last arm.
func (p *clientProc) result(timeout time.Duration) (reply, error) {
	// The child times out by itself; this is for a child that hangs.
	r, err := p.next(timeout + 30*time.Second)
	if err != nil {
		return r, err
	}
	if r.Err != "" {
		return r, errors.New(r.Err)
	}
	if r.Seq != p.seq || len(r.Times) == 0 {
		return r, fmt.Errorf("clients' process answered %+v, want the result of %d", r, p.seq)
	}
	return r, nil
}

func (p *clientProc) next(timeout time.Duration) (reply, error) {
	select {
	case r, ok := <-p.replies:
		if !ok {
			return reply{}, fmt.Errorf("the clients' process ended: %v", p.cmd.Wait())
		}
		return r, nil
	case <-time.After(timeout):
		return reply{}, fmt.Errorf("the clients' process did not answer within %v", timeout)
	}
}

// quit ends the clients and the child, recording its CPU and memory.
func (p *clientProc) quit() error {
	p.seq++
	if err := p.enc.Encode(command{Op: "quit", Seq: p.seq}); err != nil {
		p.kill()
		return err
	}
	for {
		r, err := p.next(60 * time.Second)
		if err != nil {
			p.kill()
			return err
		}
		if r.Seq == p.seq {
			p.CPU, p.RSS = r.CPU, r.RSS
			break
		}
	}
	p.stdin.Close()
	return p.cmd.Wait()
}

// kill ends a child that does not quit.
func (p *clientProc) kill() {
	p.stdin.Close()
	p.cmd.Process.Kill()
	p.cmd.Wait()
}

// cpuTime is this process's user + system CPU time, 0 if it cannot be
// read.
func cpuTime() time.Duration {
	d, _ := harness.CPUTime()
	return d
}

// raiseFileLimit makes sure this process may open need file descriptors:
// every simulated client is a connection, at both ends.
func raiseFileLimit(need uint64, who string) error {
	hard, err := harness.RaiseFileLimit(need)
	if err == nil && hard < need {
		err = fmt.Errorf("the %s need about %d open files but this process's hard limit is %d: raise it (ulimit -Hn, as root) or pass fewer -clients", who, need, hard)
	}
	return err
}
