package apiserver

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/sluice/sluice/internal/resource"
	"github.com/sluice/sluice/internal/store"
)

// WatchContentType is the content type of a watch stream: one JSON event per line.
const WatchContentType = "application/x-ndjson"

// watch streams events as newline-delimited JSON until the client leaves, the
// store ends the watch, timeoutSeconds passes, or the server shuts down.
func (s *Server) watch(w http.ResponseWriter, r *http.Request, k *resource.Kind, sel labels.Selector) {
	q := r.URL.Query()
	rv, err := store.ParseResourceVersion(q.Get("resourceVersion"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	defer context.AfterFunc(s.watches, cancel)()
	if ts := q.Get("timeoutSeconds"); ts != "" {
		n, err := strconv.Atoi(ts)
		if err != nil || n < 0 {
			s.writeError(w, r, fmt.Errorf("%w: timeoutSeconds %q is not a non-negative integer", resource.ErrBadRequest, ts))
			return
		}
		if n > 0 {
			var stop context.CancelFunc
			ctx, stop = context.WithTimeout(ctx, time.Duration(n)*time.Second)
			defer stop()
		}
	}
	events, err := s.store.Watch(ctx, k, r.PathValue("namespace"), store.WatchOptions{ResourceVersion: rv, Selector: sel})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.metrics.watches.Inc()
	defer s.metrics.watches.Dec()

	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", WatchContentType)
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	if err := rc.Flush(); err != nil {
		return
	}
	var line []byte
	for {
		var ev store.Event
		var ok bool
		select {
		case ev, ok = <-events:
		case <-ctx.Done():
			return
		}
		if !ok {
			return
		}
		var obj []byte
		if ev.Type == watch.Error {
			obj, err = json.Marshal(resource.StatusOf(ev.Err))
		} else {
			// Encoded once for every watcher of the change.
			obj, err = ev.ObjectJSON()
		}
		if err != nil {
			s.log.Error("encode watch event", "err", err)
			return
		}
		line = append(line[:0], `{"type":"`...)
		line = append(line, ev.Type...)
		line = append(line, `","object":`...)
		line = append(line, obj...)
		line = append(line, "}\n"...)
		if _, err := w.Write(line); err != nil {
			return
		}
		// Write events that are already queued before flushing, so a burst
		// costs one flush.
		if len(events) == 0 {
			if err := rc.Flush(); err != nil {
				return
			}
		}
	}
}
