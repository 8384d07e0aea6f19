package consul

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"
)

// Blocking queries, as Consul's: ?index=N&wait=D. The default and maximum
// waits and the jitter are Consul's.
const (
	defaultWait    = 5 * time.Minute
	maxWait        = 10 * time.Minute
	jitterFraction = 16 // up to wait/16 is added, so that clients spread out
)

// blockingQuery is what a read asks to wait for.
type blockingQuery struct {
	// Index is the X-Consul-Index the client last saw; 0 answers at once.
	Index uint64
	// Wait is how long to wait for a change, jitter included.
	Wait time.Duration
}

// parseBlocking reads ?index= and ?wait=, with Consul's 400 texts.
func parseBlocking(r *http.Request) (blockingQuery, error) {
	q := r.URL.Query()
	var b blockingQuery
	if s := q.Get("index"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return b, badRequest("Invalid index")
		}
		b.Index = n
	}
	b.Wait = defaultWait
	if s := q.Get("wait"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			return b, badRequest("Invalid wait time")
		}
		if d > 0 {
			b.Wait = min(d, maxWait)
		}
	}
	b.Wait += time.Duration(rand.Int64N(int64(b.Wait/jitterFraction) + 1))
	return b, nil
}

// waitFunc blocks until something a query answers about changes after the
// revision after, and returns the revision of that change: the least
// revision an answer must reflect (0 when unknown, e.g. after a compaction:
// the answer is then read afresh). It returns ctx's error when ctx ends
// first. KV's blocking reads pass their own (see awaitChange).
type waitFunc func(ctx context.Context, after int64) (int64, error)

// awaitChange waits, for a query with an index, until wait reports a change
// after the index or the query's wait time passes (or Close is called). It
// returns the least revision the answer must reflect, and whether there was
// a change: without one, the answer carries the query's index again, as
// Consul's does ("nothing changed since").
//
// An index ahead of the store's revision (the client saw another cluster, or
// a restored backup) answers at once with the current state, whose lower
// index tells the client to start over, as Consul's clients do when the
// index goes backwards.
//
// KV handlers use it as health and catalog do:
//
//	q, err := parseBlocking(r)
//	minRev, changed, err := f.awaitChange(r.Context(), q, waitForKey)
//	... read (at least minRev), then setQueryMeta(w, index), where index
//	    is the read's if changed, else q.Index.
func (f *Facade) awaitChange(ctx context.Context, q blockingQuery, wait waitFunc) (minRev int64, changed bool, err error) {
	if q.Index == 0 || q.Index > math.MaxInt64 {
		return 0, true, nil
	}
	index := int64(q.Index)
	cur, err := f.store.Revision(ctx)
	if err != nil {
		return 0, false, err
	}
	if index > cur {
		return 0, true, nil
	}
	select {
	case <-f.closing:
		return index, false, nil
	default:
	}
	wctx, cancel := context.WithTimeout(ctx, q.Wait)
	defer cancel()
	go func() {
		select {
		case <-f.closing:
			cancel()
		case <-wctx.Done():
		}
	}()
	rev, err := wait(wctx, index)
	switch {
	case err == nil:
		return rev, true, nil
	case ctx.Err() != nil:
		return 0, false, ctx.Err() // the client left, or the request's bound passed
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return index, false, nil // the wait passed (or the server is stopping)
	}
	return 0, false, err
}

// setQueryMeta sets the headers Consul sends with every read: the index
// (never 0: a client would then never block) and that there is a leader.
func setQueryMeta(w http.ResponseWriter, index int64) {
	h := w.Header()
	h.Set("X-Consul-Index", strconv.FormatInt(max(index, 1), 10))
	h.Set("X-Consul-KnownLeader", "true")
	h.Set("X-Consul-LastContact", "0")
}
