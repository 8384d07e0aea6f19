package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/sluice/sluice/bench/internal/harness"
)

// target is one thing wrk loads.
type target struct {
	name string
	url  string
}

// Target names, as the report prints them.
const (
	direct = "upstream directly"
	sluice = "Sluice gateway"
	nginx  = "nginx"
	caddy  = "Caddy"
)

// results is what a run measured: for each connection count and target,
// the loads of every round.
type results struct {
	cfg     config
	machine string
	notes   []string
	targets []string
	loads   map[int]map[string][]load
}

// measure starts the upstream and every proxy, then loads each.
func measure(ctx context.Context, cfg config) (*results, error) {
	t, err := ensureTools(ctx, cfg.Progress)
	if err != nil {
		return nil, err
	}
	if _, err := harness.RaiseFileLimit(uint64(8 * maxOf(cfg.Connections))); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "sluice-bench-gateway-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	// Processes stop when this context ends (their Cancel interrupts them).
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	upstream, stopUpstream, err := startUpstream()
	if err != nil {
		return nil, err
	}
	defer stopUpstream()
	res := &results{cfg: cfg, machine: describeMachine(), loads: map[int]map[string][]load{}}
	targets := []target{{direct, "http://" + upstream + "/"}}
	var procs []*process
	defer func() {
		for _, p := range procs {
			p.stop()
		}
	}()

	sub := func(name string) (string, error) {
		d := filepath.Join(dir, name)
		return d, os.MkdirAll(d, 0o755)
	}
	d, err := sub("sluice")
	if err != nil {
		return nil, err
	}
	url, ps, err := startSluice(ctx, d, upstream)
	procs = append(procs, ps...)
	switch {
	case errors.Is(err, errNoGateway):
		res.notes = append(res.notes, "Sluice gateway: not measured, "+err.Error())
	case err != nil:
		return nil, fmt.Errorf("sluice: %w", err)
	default:
		targets = append(targets, target{sluice, url})
	}
	if d, err = sub("nginx"); err != nil {
		return nil, err
	}
	url, p, err := startNginx(ctx, t.nginx, d, upstream)
	if p != nil {
		procs = append(procs, p)
	}
	if err != nil {
		return nil, fmt.Errorf("nginx: %w", err)
	}
	targets = append(targets, target{nginx, url})
	if d, err = sub("caddy"); err != nil {
		return nil, err
	}
	url, p, err = startCaddy(ctx, t.caddy, d, upstream)
	if p != nil {
		procs = append(procs, p)
	}
	if err != nil {
		return nil, fmt.Errorf("caddy: %w", err)
	}
	targets = append(targets, target{caddy, url})
	for _, tg := range targets {
		res.targets = append(res.targets, tg.name)
	}

	for _, conns := range cfg.Connections {
		res.loads[conns] = map[string][]load{}
		for round := range cfg.Rounds {
			for _, tg := range harness.RoundOrder(targets, round) {
				// A short unmeasured load first: connections, pools and
				// caches warm up the same for every target.
				if _, err := runWrk(ctx, t.wrk, cfg.Threads, conns, time.Second, tg.url); err != nil {
					return nil, err
				}
				l, err := runWrk(ctx, t.wrk, cfg.Threads, conns, cfg.Duration, tg.url)
				if err != nil {
					return nil, err
				}
				res.loads[conns][tg.name] = append(res.loads[conns][tg.name], l)
				fmt.Fprintf(cfg.Progress, "round %d/%d  c=%-4d %-18s %9.0f req/s  p50 %-9v p99 %-9v errors %d\n",
					round+1, cfg.Rounds, conns, tg.name, l.rps, l.p50, l.p99, l.errors)
			}
		}
	}
	return res, nil
}

func maxOf(ns []int) int {
	m := 0
	for _, n := range ns {
		m = max(m, n)
	}
	return m
}
