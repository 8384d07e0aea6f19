// Package informer keeps an indexed, up-to-date cache of one kind of resource
// and runs reconcile workers over it: the machinery every Sluice controller
// (xDS translation, health checks, rollouts) is built on.
//
// It owns the plumbing between the store or the REST API and a controller's
// decision logic, and nothing else: it does not decide anything about the
// objects it carries, and it reuses client-go's tools/cache and
// util/workqueue rather than rewriting them.
//
// # The model
//
// A [Source] lists and watches one kind, in one namespace or all, filtered by
// a label selector: [NewStoreSource] reads the store in-process,
// [NewRESTSource] a server's REST API. Sources are client-go ListerWatchers
// returning typed objects, so an [Informer] is client-go's
// SharedIndexInformer over one:
//
//	Source.List ─┐
//	             ├─► Reflector ─► FIFO (deltas) ─► Indexer (namespace index)
//	Source.Watch ┘                                      └─► event handlers
//
// The Reflector lists once, then watches from the list's resourceVersion and
// remembers the resourceVersion of every event (BOOKMARK events advance it
// without a change). What happens when a watch ends is decided by how it ends:
//
//   - the stream drops (the server restarts, a connection breaks): the result
//     channel closes and the Reflector watches again from the last
//     resourceVersion it saw — no relist, no event lost or repeated;
//   - the server cannot be reached: the watch is retried with backoff from the
//     same resourceVersion, still without a relist;
//   - the resourceVersion was compacted away: the source sends an ERROR event
//     holding a *metav1.Status with code 410 and reason Expired, and the
//     Reflector lists again; handlers then see Update events for objects whose
//     resourceVersion did not change and a Delete (possibly a
//     cache.DeletedFinalStateUnknown) for objects removed meanwhile.
//
// Sluice's API has no WatchList (a watch that streams the initial objects,
// sendInitialEvents): sources say so with IsWatchListSemanticsUnSupported, so
// the Reflector always lists and then watches.
//
// # Reconciling
//
// A [Controller] turns handler events into "namespace/name" keys on a
// rate-limited work queue, and N workers call its [ReconcileFunc] with them.
// Controllers are level-triggered: the key says what to look at, never what
// happened, and Reconcile reads the current object from the Informer's cache
// (absent means deleted). The queue holds each key once however many events
// arrive, never hands the same key to two workers at once, retries a failed
// key with per-key exponential backoff up to a bounded number of times, and
// drains on shutdown.
package informer
