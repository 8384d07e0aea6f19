package informer

import (
	"context"
	"fmt"
	"sync"

	"k8s.io/client-go/tools/cache"
)

// RunGroup runs informers in goroutines tracked by wg until ctx ends, each
// calling changed on every add, update and delete, and waits for their
// caches to sync. It returns false if ctx ended first. Components that
// rebuild their whole output from every informer on any change (the xDS
// translation, Gateway status) start their informers with it.
func RunGroup(ctx context.Context, wg *sync.WaitGroup, infs []*Informer, changed func()) (bool, error) {
	handler := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { changed() },
		UpdateFunc: func(any, any) { changed() },
		DeleteFunc: func(any) { changed() },
	}
	synced := make([]cache.InformerSynced, 0, len(infs))
	for _, inf := range infs {
		if _, err := inf.AddEventHandler(handler); err != nil {
			return false, fmt.Errorf("informer: watch %s: %w", inf.Kind(), err)
		}
		wg.Go(func() { inf.Run(ctx) })
		synced = append(synced, inf.HasSynced)
	}
	return cache.WaitForCacheSync(ctx.Done(), synced...), nil
}

// ListAll calls add with every cached object of every informer.
func ListAll(infs []*Informer, add func(any) bool) {
	for _, inf := range infs {
		for _, o := range inf.List("") {
			add(o)
		}
	}
}
