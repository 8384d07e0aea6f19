package xds

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/sluice/sluice/internal/informer"
	"github.com/sluice/sluice/internal/resource"
)

// ControllerOptions configure a Controller.
type ControllerOptions struct {
	Logger *slog.Logger
	// Window is how long a burst of changes may pause before a snapshot is
	// built (default 100ms).
	Window time.Duration
	// MaxDelay bounds how long a change waits for its snapshot while changes
	// keep coming (default 1s).
	MaxDelay time.Duration
}

// inputKinds are the kinds a translation reads.
var inputKinds = []*resource.Kind{
	resource.ServiceKind, resource.EndpointKind, resource.BackendPolicyKind,
	resource.HTTPRouteKind, resource.GRPCRouteKind, resource.GatewayKind,
	resource.SecretKind,
}

// Controller keeps a Cache's snapshot in step with the store: informers on
// every input kind, debounced, then a whole new snapshot translated and set.
// It is level-triggered: every build reads the informers' current state, so
// how many events a burst held does not matter.
type Controller struct {
	cache     *Cache
	metrics   *metrics
	log       *slog.Logger
	window    time.Duration
	maxDelay  time.Duration
	informers []*informer.Informer

	mu      sync.Mutex // guards pending
	pending time.Time  // when the oldest change not yet built was seen; zero if none
	dirty   chan struct{}
}

// NewController returns a controller feeding cache from the informers'
// sources; sources must hold one per input kind.
func NewController(sources []informer.Source, c *Cache, opts ControllerOptions) *Controller {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Window <= 0 {
		opts.Window = 100 * time.Millisecond
	}
	if opts.MaxDelay <= 0 {
		opts.MaxDelay = time.Second
	}
	ctl := &Controller{
		cache:    c,
		metrics:  c.metrics,
		log:      opts.Logger,
		window:   opts.Window,
		maxDelay: opts.MaxDelay,
		dirty:    make(chan struct{}, 1),
	}
	for _, src := range sources {
		ctl.informers = append(ctl.informers, informer.New(src, informer.Options{Logger: opts.Logger}))
	}
	return ctl
}

// InputSources returns, for a list/watch source constructor, one source per
// input kind, across all namespaces.
func InputSources(newSource func(*resource.Kind) informer.Source) []informer.Source {
	srcs := make([]informer.Source, len(inputKinds))
	for i, k := range inputKinds {
		srcs[i] = newSource(k)
	}
	return srcs
}

// Run builds snapshots until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if ok, err := informer.RunGroup(ctx, &wg, c.informers, c.changed); !ok || err != nil {
		if err != nil {
			return fmt.Errorf("xds: %w", err)
		}
		return nil
	}
	c.build()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-c.dirty:
		}
		if !c.debounce(ctx) {
			return nil
		}
		c.build()
	}
}

// changed records a change seen by an informer.
func (c *Controller) changed() {
	c.mu.Lock()
	if c.pending.IsZero() {
		c.pending = time.Now()
	}
	c.mu.Unlock()
	select {
	case c.dirty <- struct{}{}:
	default:
	}
}

// debounce waits until changes pause for the window, or the oldest pending
// change has waited MaxDelay. It returns false if ctx ends.
func (c *Controller) debounce(ctx context.Context) bool {
	c.mu.Lock()
	deadline := c.pending.Add(c.maxDelay)
	c.mu.Unlock()
	quiet := time.NewTimer(c.window)
	defer quiet.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-c.dirty:
			wait := min(c.window, time.Until(deadline))
			if wait <= 0 {
				return true
			}
			quiet.Reset(wait)
		case <-quiet.C:
			return true
		}
	}
}

// build translates the informers' state and serves the result.
func (c *Controller) build() {
	c.mu.Lock()
	changedAt := c.pending
	c.pending = time.Time{}
	c.mu.Unlock()

	start := time.Now()
	snap, err := Translate(c.inputs())
	c.metrics.builds.Inc()
	c.metrics.buildTime.Observe(time.Since(start).Seconds())
	if err != nil {
		// The previous snapshot stays in force.
		c.log.Error("xds translation failed; serving the previous snapshot", "err", err)
		return
	}
	if p := snap.Problems(); len(p) > 0 {
		c.log.Warn("xds translation left resources out", "problems", p)
	}
	c.cache.SetSnapshot(snap, changedAt)
	c.log.Debug("xds snapshot built", "took", time.Since(start),
		"listeners", snap.Len(ListenerType), "routes", snap.Len(RouteType), "clusters", snap.Len(ClusterType))
}

// inputs reads every input kind from the informers' caches.
func (c *Controller) inputs() *Inputs {
	in := &Inputs{}
	informer.ListAll(c.informers, in.Add)
	return in
}
