package informer

import (
	"context"
	"log/slog"
	"maps"

	"github.com/go-logr/logr"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	"github.com/sluice/sluice/internal/resource"
)

// Options configure an Informer.
type Options struct {
	// Logger receives the informer's logs, client-go's included (nil: none).
	Logger *slog.Logger
	// Indexers are indexes to keep beside the namespace index
	// (cache.NamespaceIndex), which every informer has.
	Indexers cache.Indexers
}

// Informer keeps an indexed cache of the objects of a Source and tells event
// handlers about every change. It is client-go's SharedIndexInformer; see the
// package documentation for how it lists, watches and recovers.
//
// Construct it with New, add handlers, then call Run once. Objects it hands
// out are shared with the cache and with other handlers: never modify one,
// DeepCopy it first.
type Informer struct {
	kind     *resource.Kind
	informer cache.SharedIndexInformer
	// logger is log as a logr logger, for client-go.
	logger klog.Logger
}

// New returns an informer over src. It starts nothing.
func New(src Source, opts Options) *Informer {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("informer", src.Kind().String())
	indexers := cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc}
	maps.Copy(indexers, opts.Indexers)
	return &Informer{
		kind: src.Kind(),
		informer: cache.NewSharedIndexInformerWithOptions(src, src.Kind().New(), cache.SharedIndexInformerOptions{
			Indexers:          indexers,
			ObjectDescription: src.Kind().String(),
		}),
		logger: logr.FromSlogHandler(log.Handler()),
	}
}

// Kind is the kind of the cached objects.
func (i *Informer) Kind() *resource.Kind { return i.kind }

// Run lists, watches and calls handlers until ctx ends. It returns once the
// informer has stopped; call it once.
func (i *Informer) Run(ctx context.Context) {
	// client-go logs through the context's logger, so its logs go to ours
	// instead of klog's global output.
	i.informer.RunWithContext(klog.NewContext(ctx, i.logger))
}

// HasSynced reports whether the first list has reached the cache.
func (i *Informer) HasSynced() bool { return i.informer.HasSynced() }

// AddEventHandler registers h; its calls for one informer are sequential.
// Add handlers before Run. A handler added to a running informer first gets
// an Add for every cached object; the registration's HasSynced says when it
// has seen them all.
func (i *Informer) AddEventHandler(h cache.ResourceEventHandler) (cache.ResourceEventHandlerRegistration, error) {
	return i.informer.AddEventHandlerWithOptions(h, cache.HandlerOptions{Logger: &i.logger})
}

// RemoveEventHandler unregisters a handler added with AddEventHandler and
// returns once the handler has finished its last call, so never call it from
// the handler.
func (i *Informer) RemoveEventHandler(reg cache.ResourceEventHandlerRegistration) error {
	return cache.ShutDownEventHandler(i.informer, reg)
}

// Get returns the cached object with key "namespace/name".
func (i *Informer) Get(key string) (resource.Object, bool) {
	obj, ok, _ := i.informer.GetIndexer().GetByKey(key) // a cache lookup cannot fail
	if !ok {
		return nil, false
	}
	return obj.(resource.Object), true
}

// List returns the cached objects of a namespace, of all when namespace is empty.
func (i *Informer) List(namespace string) []resource.Object {
	var items []any
	if namespace == "" {
		items = i.informer.GetIndexer().List()
	} else {
		items, _ = i.informer.GetIndexer().ByIndex(cache.NamespaceIndex, namespace) // the index always exists
	}
	objs := make([]resource.Object, len(items))
	for n, item := range items {
		objs[n] = item.(resource.Object)
	}
	return objs
}

// Indexer is the cache, for lookups by the indexes of Options.Indexers.
func (i *Informer) Indexer() cache.Indexer { return i.informer.GetIndexer() }
