package main

import (
	"context"
	"fmt"
	"os"
	"slices"

	"github.com/sluice/sluice/bench/internal/report"
)

// run starts one embedded etcd and one Sluice server over it, measures the
// selected phases and stops everything.
func run(ctx context.Context, cfg config) (*results, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	// Every blocking query and every worker holds a connection, with a
	// socket at both ends in this one process.
	conns := max(cfg.Waiters, slices.Max(cfg.Concurrency))
	if err := raiseFileLimit(uint64(2*conns + 1024)); err != nil {
		return nil, err
	}
	dir := cfg.Dir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "sluice-bench-registry-")
		if err != nil {
			return nil, fmt.Errorf("data dir: %w", err)
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	e, err := startEnv(ctx, dir, conns, cfg.Quiet, cfg.Log)
	if err != nil {
		return nil, err
	}
	defer e.close()
	progress(cfg, "etcd at %s (data in %s), sluice API at %s", e.etcd.Endpoint(), dir, e.apiURL)

	res := &results{cfg: cfg, machine: report.DescribeMachine("etcd, the server and the load"), payload: len(e.payload)}
	if res.consulPayload, err = e.consulStoredSize(ctx); err != nil {
		return nil, err
	}
	if cfg.has(phaseRegister) {
		if res.register, err = runRate(ctx, e, cfg, phaseRegister, selectPaths(cfg, registerPaths)); err != nil {
			return nil, err
		}
	}
	if cfg.has(phaseHeartbeat) {
		if res.heartbeat, err = runRate(ctx, e, cfg, phaseHeartbeat, selectPaths(cfg, heartbeatPaths)); err != nil {
			return nil, err
		}
	}
	if cfg.has(phaseBlocking) {
		if res.wake, res.skipped, err = runWake(ctx, e, cfg); err != nil {
			return nil, err
		}
	}
	return res, nil
}
