package informer

import (
	"context"
	"log/slog"
	"sync"

	"github.com/go-logr/logr"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"

	"github.com/sluice/sluice/internal/resource"
)

// ReconcileFunc makes the world match the current state of the object with
// key "namespace/name", which it reads from the informer's cache (absent:
// the object was deleted). It must be idempotent: it runs again after every
// change and after every error it returns.
type ReconcileFunc func(ctx context.Context, key string) error

// ControllerOptions configure a Controller.
type ControllerOptions struct {
	// Workers is how many keys are reconciled at once (default 1). One key
	// is never reconciled by two workers at once.
	Workers int
	// MaxRetries is how often a failing key is retried before it is dropped
	// until its next change (default 10).
	MaxRetries int
	// RateLimiter spaces the retries of a key (default: client-go's
	// controller limiter, per-key exponential backoff from 5ms to 1000s under
	// an overall 10 qps, burst 100).
	RateLimiter workqueue.TypedRateLimiter[string]
	// Logger receives the controller's logs (nil: none).
	Logger *slog.Logger
}

// Controller reconciles the keys of the objects an Informer reports changed.
type Controller struct {
	informer  *Informer
	reconcile ReconcileFunc
	workers   int
	retries   int
	limiter   workqueue.TypedRateLimiter[string]
	log       *slog.Logger

	mu    sync.Mutex
	queue workqueue.TypedRateLimitingInterface[string] // while running
}

// NewController returns a controller calling reconcile for the objects of
// inf. It starts nothing.
func NewController(inf *Informer, reconcile ReconcileFunc, opts ControllerOptions) *Controller {
	if opts.Workers <= 0 {
		opts.Workers = 1
	}
	if opts.MaxRetries <= 0 {
		opts.MaxRetries = 10
	}
	if opts.RateLimiter == nil {
		opts.RateLimiter = workqueue.DefaultTypedControllerRateLimiter[string]()
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Controller{
		informer:  inf,
		reconcile: reconcile,
		workers:   opts.Workers,
		retries:   opts.MaxRetries,
		limiter:   opts.RateLimiter,
		log:       opts.Logger.With("controller", inf.Kind().String()),
	}
}

// Run reconciles until ctx ends, then stops taking keys, waits for the
// reconciles in flight and returns. The informer runs on its own (Run it
// before or after); workers start once the controller has seen every cached
// object, so a reconcile always sees a full cache. Call Run once.
func (c *Controller) Run(ctx context.Context) error {
	// The queue starts a goroutine when made, so it is made here, where its
	// owner stops it, and the handler is registered here too: on an informer
	// that is already running, client-go replays the cache to a new handler,
	// so no change is missed whatever the start order.
	logger := klog.Logger(logr.FromSlogHandler(c.log.Handler()))
	queue := workqueue.NewTypedRateLimitingQueueWithConfig(c.limiter, workqueue.TypedRateLimitingQueueConfig[string]{
		DelayingQueue: workqueue.NewTypedDelayingQueueWithConfig(workqueue.TypedDelayingQueueConfig[string]{Logger: &logger}),
	})
	reg, err := c.informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) { c.enqueue(queue, obj) },
		UpdateFunc: func(oldObj, newObj any) {
			// The same resourceVersion is no change: a relist re-reports
			// every object.
			if oldObj.(resource.Object).GetResourceVersion() != newObj.(resource.Object).GetResourceVersion() {
				c.enqueue(queue, newObj)
			}
		},
		DeleteFunc: func(obj any) { c.enqueue(queue, obj) },
	})
	if err != nil {
		queue.ShutDown()
		return err
	}

	c.mu.Lock()
	c.queue = queue
	c.mu.Unlock()
	var wg sync.WaitGroup
	select {
	case <-reg.HasSyncedChecker().Done():
		c.log.Debug("controller started", "workers", c.workers)
		for range c.workers {
			wg.Go(func() {
				for c.next(ctx, queue) {
				}
			})
		}
	case <-ctx.Done():
	}
	<-ctx.Done()
	// Unregister first, so that nothing adds to a queue being shut down.
	if err := c.informer.RemoveEventHandler(reg); err != nil {
		c.log.Warn("removing the event handler failed", "err", err)
	}
	c.mu.Lock()
	c.queue = nil
	c.mu.Unlock()
	// Workers take what is left in the queue without reconciling it (see
	// next), so waiting for them drains the queue as ShutDownWithDrain
	// would; that one, on a rate-limited queue, would not stop the goroutine
	// of its delays.
	queue.ShutDown()
	wg.Wait()
	c.log.Debug("controller stopped")
	return nil
}

// Enqueue asks for key ("namespace/name") to be reconciled, for changes the
// informer does not see (state kept outside the object). It does nothing
// while the controller is not running: Run reconciles every object at start.
func (c *Controller) Enqueue(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.queue != nil {
		c.queue.Add(key)
	}
}

func (c *Controller) enqueue(queue workqueue.TypedRateLimitingInterface[string], obj any) {
	// The key function understands the tombstones of deletes missed while
	// relisting (cache.DeletedFinalStateUnknown).
	key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
	if err != nil {
		c.log.Error("object without a key", "err", err)
		return
	}
	queue.Add(key)
}

// next reconciles one key; it returns false once the queue is shut down and empty.
func (c *Controller) next(ctx context.Context, queue workqueue.TypedRateLimitingInterface[string]) bool {
	key, shutdown := queue.Get()
	if shutdown {
		return false
	}
	defer queue.Done(key)
	if ctx.Err() != nil {
		// Stopping: keys still queued are left for the next start.
		return true
	}
	err := c.reconcile(ctx, key)
	switch {
	case err == nil:
		queue.Forget(key)
	case ctx.Err() != nil:
		// Interrupted by shutdown: not a failure.
	case queue.NumRequeues(key) < c.retries:
		c.log.Info("reconcile failed, will retry", "key", key, "attempt", queue.NumRequeues(key)+1, "err", err)
		queue.AddRateLimited(key)
	default:
		c.log.Error("reconcile failed, giving up until the object changes", "key", key, "attempts", queue.NumRequeues(key)+1, "err", err)
		queue.Forget(key)
	}
	return true
}
