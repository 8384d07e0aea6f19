package main

import (
	"context"
	"fmt"

	"github.com/sluice/sluice/bench/internal/report"
)

// run starts one embedded etcd and one Sluice server over it, measures the
// selected phases and stops everything.
func run(ctx context.Context, cfg config) (*results, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	// Each API watcher holds a socket at both ends, in this one process.
	if err := raiseFileLimit(uint64(2*maxConns(cfg) + 1024)); err != nil {
		return nil, err
	}
	dir, cleanup, err := tempDir(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	defer cleanup()
	e, err := startEnv(ctx, dir, maxConns(cfg), cfg.Log)
	if err != nil {
		return nil, err
	}
	defer e.close()
	progress(cfg, "etcd at %s (data in %s), sluice API at %s", e.etcd.Endpoint(), dir, e.apiURL)

	res := &results{cfg: cfg, machine: report.DescribeMachine("etcd, the server and the load"), payload: len(e.payload)}
	if cfg.Writes {
		if res.writes, err = runWrites(ctx, e, cfg); err != nil {
			return nil, err
		}
	}
	if cfg.Watch {
		if res.watch, err = runWatch(ctx, e, cfg); err != nil {
			return nil, err
		}
	}
	return res, nil
}
