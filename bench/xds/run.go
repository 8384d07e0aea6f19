package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sluice/sluice/bench/internal/harness"
	"github.com/sluice/sluice/bench/internal/report"
	"github.com/sluice/sluice/internal/store"
)

// Timeouts of the clients' process.
const (
	connectTimeoutBase      = 2 * time.Minute
	connectTimeoutPerClient = 20 * time.Millisecond
	changeTimeout           = 60 * time.Second
)

// env is what every measurement of a run shares: one embedded etcd, and
// the scenario's objects in it.
type env struct {
	cfg    config
	etcd   *store.Embedded
	sc     *scenario
	weight int32 // the last weight any change set
}

// measurement is one target, protocol and number of clients, one round.
type measurement struct {
	target   string
	protocol string
	n        int
	round    int
	// connect is from the clients' process starting to connect until the
	// last client ACKed all four resources; connectCPU is the server
	// process's CPU time over that (SnapshotCache's SetSnapshot per node
	// included).
	connect    time.Duration
	connectCPU time.Duration
	// before is the server process's memory once the server serves, before
	// any client; idle once all N have connected and converged; after once
	// the changes are done.
	before, idle, after memStats
	changes             []change
	// clientConnectCPU is the clients' process's CPU time to connect;
	// clientCPU over its whole life; clientRSS its resident set at the end.
	clientConnectCPU time.Duration
	clientCPU        time.Duration
	clientRSS        int64
}

// change is one measured change: per client, the time from the change to
// its ACK of the new ClusterLoadAssignment, and the server process's CPU
// time from the change until the last ACK.
type change struct {
	lats      []time.Duration
	cpu       time.Duration
	clientCPU time.Duration
	// alloc is what the server process allocated from the change until the
	// last ACK; gcs how many GC cycles ended meanwhile.
	alloc uint64
	gcs   uint32
	// responses counts what the clients received, by type, until the last
	// ACK (responses still in flight then are not counted).
	responses map[string]int
	// wall is the change's measured window; busy the CPU time the whole
	// machine was busy meanwhile (/proc/stat), so busy - cpu - clientCPU is
	// what other processes took: the noise.
	wall, busy time.Duration
}

// memStats is the memory of this process, after a GC.
type memStats struct {
	heapInuse  uint64
	stackInuse uint64
	sys        uint64
	rss        int64
	goroutines int
}

func (m memStats) heapStacks() int64 { return int64(m.heapInuse + m.stackInuse) }

// run measures every selected number of clients, protocol and target.
func run(ctx context.Context, cfg config) (*results, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	// The server's end of every client's connection, plus etcd and spare.
	if err := raiseFileLimit(uint64(slices.Max(cfg.Clients))+1024, "servers"); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "sluice-bench-xds-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	e := &env{cfg: cfg}
	if e.etcd, err = store.StartEmbedded(ctx, store.EmbedConfig{Dir: filepath.Join(dir, "etcd"), Logger: cfg.Log}); err != nil {
		return nil, err
	}
	defer e.etcd.Close()
	if err := e.setup(ctx); err != nil {
		return nil, err
	}
	e.weight = e.sc.weight()
	progress(cfg, "etcd at %s; Service %s with %d Endpoints", e.etcd.Endpoint(), listenerFor, cfg.Endpoints)

	res := &results{cfg: cfg, machine: report.DescribeMachine("the server process (server, etcd) and the clients' process")}
	for _, n := range cfg.Clients {
		for _, proto := range cfg.Protocols {
			for round := range cfg.Rounds {
				for _, tname := range harness.RoundOrder(cfg.Targets, round) {
					m, err := e.measure(ctx, tname, proto, n, round)
					if err != nil {
						return nil, fmt.Errorf("%s, %s, %d clients, round %d: %w", targetTitle(tname), proto, n, round+1, err)
					}
					res.add(m)
				}
			}
		}
	}
	return res, nil
}

// setup creates the scenario's objects through the API of a Sluice server
// started for that.
func (e *env) setup(ctx context.Context) error {
	s, err := startSluice(e.etcd.Endpoint(), nil, e.cfg.Debounce, e.cfg.Log)
	if err != nil {
		return err
	}
	defer s.stop()
	e.sc, err = createScenario(ctx, s.api, e.cfg.Endpoints)
	return err
}

// nextWeight is a weight no change has set yet (1-10000 are valid).
func (e *env) nextWeight() int32 {
	e.weight = 2 + e.weight%9000
	return e.weight
}

func (e *env) startTarget(name string) (target, error) {
	switch name {
	case targetSluice:
		return startSluice(e.etcd.Endpoint(), e.sc, e.cfg.Debounce, e.cfg.Log)
	case targetSnapshotCache:
		return startSnapshotCache(e.sc, e.cfg.BaselineGRPCDefaults)
	}
	return nil, fmt.Errorf("unknown target %q", name)
}

// measure starts a server, connects n clients in a child process, makes
// the changes and stops everything.
func (e *env) measure(ctx context.Context, tname, proto string, n, round int) (_ *measurement, err error) {
	cfg := e.cfg
	progress(cfg, "%s, %s, %d clients, round %d: starting the server", targetTitle(tname), proto, n, round+1)
	t, err := e.startTarget(tname)
	if err != nil {
		return nil, err
	}
	defer func() {
		if serr := t.stop(); serr != nil && err == nil {
			err = fmt.Errorf("stopping the server: %w", serr)
		}
	}()
	initial, err := e.sc.view(e.sc.weight())
	if err != nil {
		return nil, err
	}
	// One client in this process first: the server serves the scenario.
	if err := e.probe(ctx, t, proto, initial.want); err != nil {
		return nil, err
	}

	m := &measurement{target: tname, protocol: proto, n: n, round: round}
	prefix := fmt.Sprintf("bench-%s-%s-%d-r%d-", tname, proto, n, round)
	ids := make([]string, n)
	for i := range ids {
		ids[i] = prefix + strconv.Itoa(i)
	}
	m.before = readMem()
	cpu0 := cpuTime()
	if err := t.addNodes(ids); err != nil {
		return nil, err
	}
	p, err := startClients(clientConfig{Addr: t.addr(), N: n, Protocol: proto, NodePrefix: prefix, Listener: listenerFor, Concurrency: cfg.ConnectConcurrency})
	if err != nil {
		return nil, err
	}
	quit := func() error {
		if p == nil {
			return nil
		}
		err := p.quit()
		m.clientCPU, m.clientRSS = p.CPU, p.RSS
		p = nil
		return err
	}
	defer func() {
		if p != nil {
			p.kill()
		}
	}()
	connectTimeout := connectTimeoutBase + time.Duration(n)*connectTimeoutPerClient
	if err := p.arm(initial.want, true, connectTimeout); err != nil {
		return nil, err
	}
	r, err := p.result(connectTimeout)
	if err != nil {
		return nil, fmt.Errorf("connecting: %w", err)
	}
	m.connect = time.Duration(slices.Max(r.Times) - r.Start)
	m.connectCPU = cpuTime() - cpu0
	m.clientConnectCPU = r.CPU
	progress(cfg, "  %d clients connected and in sync in %v", n, m.connect.Round(time.Millisecond))

	sleep(ctx, cfg.Settle)
	m.idle = readMem()
	if cfg.MemProfile != "" {
		if err := writeHeapProfile(fmt.Sprintf("%s.%s.%s.%d.r%d", cfg.MemProfile, tname, proto, n, round)); err != nil {
			return nil, err
		}
	}

	// Change 0 warms up and is not measured.
	var stopProfile func() error
	defer func() {
		if stopProfile != nil {
			stopProfile()
		}
	}()
	for k := 0; k <= cfg.Changes; k++ {
		if k == 1 && cfg.ChangesProfile != "" {
			if stopProfile, err = startCPUProfile(fmt.Sprintf("%s.%s.%s.%d.r%d", cfg.ChangesProfile, tname, proto, n, round)); err != nil {
				return nil, err
			}
		}
		w := e.nextWeight()
		v, err := e.sc.view(w)
		if err != nil {
			return nil, err
		}
		if err := p.arm(v.edsWant(), false, changeTimeout); err != nil {
			return nil, err
		}
		var msA runtime.MemStats
		runtime.ReadMemStats(&msA)
		cpuA, busyA, wallA := cpuTime(), machineBusy(), monoNow()
		at, err := t.change(ctx, w)
		if err != nil {
			return nil, err
		}
		r, err := p.result(changeTimeout)
		if err != nil {
			return nil, fmt.Errorf("change %d (weight %d): %w", k, w, err)
		}
		cpu, busy, wall := cpuTime()-cpuA, machineBusy()-busyA, time.Duration(monoNow()-wallA)
		var msB runtime.MemStats
		runtime.ReadMemStats(&msB)
		c := change{cpu: cpu, clientCPU: r.CPU, lats: make([]time.Duration, len(r.Times)),
			alloc: msB.TotalAlloc - msA.TotalAlloc, gcs: msB.NumGC - msA.NumGC, responses: r.Responses,
			wall: wall, busy: busy}
		for i, ts := range r.Times {
			c.lats[i] = time.Duration(max(ts-at, 0))
		}
		if k > 0 {
			m.changes = append(m.changes, c)
			progress(cfg, "  change %d: all %d ACKed in %v (p50 %v)", k, n, fmtDur(slices.Max(c.lats)), fmtDur(report.Percentile(c.lats, 50)))
		}
		sleep(ctx, cfg.Gap)
	}
	if stopProfile != nil {
		err, stopProfile = stopProfile(), nil
		if err != nil {
			return nil, err
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.after = readMem()
	if err := quit(); err != nil {
		return nil, fmt.Errorf("stopping the clients: %w", err)
	}
	return m, nil
}

// probe connects one client in this process and waits until it holds
// want: the server is up and serves the scenario as translated here.
func (e *env) probe(ctx context.Context, t target, proto string, want state) error {
	const prefix = "bench-probe-"
	if err := t.addNodes([]string{prefix + "0"}); err != nil {
		return err
	}
	f := newFleet(clientConfig{Addr: t.addr(), N: 1, Protocol: proto, NodePrefix: prefix, Listener: listenerFor, Concurrency: 1})
	w := f.arm(want)
	f.start()
	defer f.stop()
	if _, err := f.await(ctx, w, 30*time.Second); err != nil {
		return fmt.Errorf("a first client did not get the scenario's resources: %w", err)
	}
	return nil
}

// readMem collects garbage, returns free memory to the OS and reads what
// this process holds.
func readMem() memStats {
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memStats{heapInuse: ms.HeapInuse, stackInuse: ms.StackInuse, sys: ms.Sys, rss: rss(), goroutines: runtime.NumGoroutine()}
}

// machineBusy is the CPU time all processors of the machine have spent
// busy since boot (/proc/stat: user, nice, system, irq, softirq, steal), at
// the kernel's 10 ms resolution.
func machineBusy() time.Duration {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(data), "\n")
	fields := strings.Fields(line)
	if len(fields) < 9 || fields[0] != "cpu" {
		return 0
	}
	var ticks int64
	for i, f := range fields[1:9] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		n, _ := strconv.ParseInt(f, 10, 64)
		ticks += n
	}
	const userHZ = 100 // USER_HZ, fixed at 100 for /proc on Linux
	return time.Duration(ticks) * time.Second / userHZ
}

// rss is this process's resident set size (VmRSS), in bytes.
func rss() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}

// startCPUProfile profiles this process's CPU into path until the
// returned function is called.
func startCPUProfile(path string) (func() error, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() error {
		pprof.StopCPUProfile()
		return f.Close()
	}, nil
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return pprof.Lookup("heap").WriteTo(f, 0)
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func progress(cfg config, format string, args ...any) {
	if cfg.Progress != nil {
		fmt.Fprintf(cfg.Progress, format+"\n", args...)
	}
}
