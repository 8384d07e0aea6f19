package kv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"

	"github.com/sluice/sluice/internal/apiserver"
	"github.com/sluice/sluice/internal/resource"
)

// IndexHeader carries the etcd revision a read was made at.
const IndexHeader = "X-Sluice-Index"

// List is the answer of GET /v1/kv/{prefix}?recurse.
type List struct {
	Index int64   `json:"index"`
	Items []Entry `json:"items"`
}

// KeyList is the answer of GET /v1/kv/{prefix}?keys.
type KeyList struct {
	Index int64    `json:"index"`
	Keys  []string `json:"keys"`
}

// DeleteResult is the answer of DELETE /v1/kv/{key}.
type DeleteResult struct {
	Deleted int64 `json:"deleted"`
	Index   int64 `json:"index"`
}

// History is the answer of GET /v1/kv/{key}?history.
type History struct {
	Key      string    `json:"key"`
	Versions []Version `json:"versions"`
}

// WireEvent is one line of a watch stream: an entry for PUT and DELETE, a
// resource.Status for ERROR.
type WireEvent struct {
	Type  EventType        `json:"type"`
	Entry *Entry           `json:"entry,omitempty"`
	Error *resource.Status `json:"error,omitempty"`
}

// WatchContentType is the content type of a watch stream: one JSON event per line.
const WatchContentType = "application/x-ndjson"

// Handler serves the native KV API under /v1/kv/. It is mounted behind the
// API server's authentication and request timeout (which spares
// ?watch=true), as one Config.Extra entry for "/v1/kv/".
type Handler struct {
	store *Store
	log   *slog.Logger
	mux   *http.ServeMux

	// watches ends with CloseWatches, so that a graceful shutdown does not
	// wait for watch streams.
	watches     context.Context
	stopWatches context.CancelFunc
}

// NewHandler returns the HTTP API of a store.
func NewHandler(s *Store, log *slog.Logger) *Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &Handler{store: s, log: log, mux: http.NewServeMux()}
	h.watches, h.stopWatches = context.WithCancel(context.Background())
	h.mux.HandleFunc("GET /v1/kv/{key...}", h.get)
	h.mux.HandleFunc("PUT /v1/kv/{key...}", h.put)
	h.mux.HandleFunc("DELETE /v1/kv/{key...}", h.delete)
	h.mux.HandleFunc("POST /v1/kv/{key...}", h.rollback)
	h.mux.HandleFunc("/v1/kv/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", "GET, HEAD, PUT, DELETE, POST")
		st := &resource.Status{Code: http.StatusMethodNotAllowed, Reason: "MethodNotAllowed",
			Message: fmt.Sprintf("%s is not served on /v1/kv/; use GET, PUT, DELETE or POST (rollback)", r.Method)}
		apiserver.WriteJSON(w, st.Code, st)
	})
	return h
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// CloseWatches ends every open watch stream cleanly; call it when shutdown begins.
func (h *Handler) CloseWatches() { h.stopWatches() }

// writeError answers with the Status of err; internal errors are logged
// with their detail, which the client does not see.
func (h *Handler) writeError(w http.ResponseWriter, r *http.Request, err error) {
	if st := resource.StatusOf(err); st.Code >= 500 {
		h.log.Error("kv request failed", "method", r.Method, "path", r.URL.Path, "code", st.Code, "err", err)
	}
	apiserver.WriteError(w, err)
}

func (h *Handler) writeJSON(w http.ResponseWriter, index int64, v any) {
	if index > 0 {
		w.Header().Set(IndexHeader, strconv.FormatInt(index, 10))
	}
	if err := apiserver.WriteJSON(w, http.StatusOK, v); err != nil {
		h.log.Debug("write response", "err", err)
	}
}

// flag reads a query parameter that is on when present (?recurse), unless
// it says false or 0.
func flag(q url.Values, name string) bool {
	if !q.Has(name) {
		return false
	}
	v := q.Get(name)
	return v != "false" && v != "0"
}

// index reads a non-negative integer query parameter; nil when absent.
func index(q url.Values, name string) (*int64, error) {
	if !q.Has(name) {
		return nil, nil
	}
	n, err := strconv.ParseInt(q.Get(name), 10, 64)
	if err != nil || n < 0 {
		return nil, fmt.Errorf("%w: query parameter %s=%q is not a non-negative integer", resource.ErrBadRequest, name, q.Get(name))
	}
	return &n, nil
}

// watching says whether a request asks for a watch stream: ?watch=true or
// 1, as the API server's timeout exemption reads it.
func watching(q url.Values) (bool, error) {
	switch v := q.Get("watch"); {
	case !q.Has("watch"), v == "false", v == "0":
		return false, nil
	case v == "true", v == "1":
		return true, nil
	default:
		return false, fmt.Errorf("%w: query parameter watch=%q: want watch=true", resource.ErrBadRequest, v)
	}
}

func (h *Handler) get(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	key := r.PathValue("key")
	watch, err := watching(q)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	switch {
	case watch:
		h.watch(w, r, key, flag(q, "recurse"))
	case flag(q, "history"):
		versions, rev, err := h.store.history(r.Context(), key)
		if err != nil {
			h.writeErrorAt(w, r, rev, err)
			return
		}
		h.writeJSON(w, rev, History{Key: key, Versions: versions})
	case flag(q, "keys"):
		keys, rev, err := h.store.Keys(r.Context(), key, q.Get("separator"))
		if err != nil {
			h.writeError(w, r, err)
			return
		}
		h.writeJSON(w, rev, KeyList{Index: rev, Keys: keys})
	case flag(q, "recurse"):
		items, rev, err := h.store.List(r.Context(), key)
		if err != nil {
			h.writeError(w, r, err)
			return
		}
		h.writeJSON(w, rev, List{Index: rev, Items: items})
	default:
		e, rev, err := h.store.Get(r.Context(), key)
		if err != nil {
			h.writeErrorAt(w, r, rev, err)
			return
		}
		if flag(q, "raw") {
			w.Header().Set(IndexHeader, strconv.FormatInt(rev, 10))
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Write(e.Value)
			return
		}
		h.writeJSON(w, rev, e)
	}
}

// writeErrorAt answers an error of a read made at rev (a missing key still
// has the revision it was missing at).
func (h *Handler) writeErrorAt(w http.ResponseWriter, r *http.Request, rev int64, err error) {
	if rev > 0 {
		w.Header().Set(IndexHeader, strconv.FormatInt(rev, 10))
	}
	h.writeError(w, r, err)
}

func (h *Handler) put(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var opts PutOptions
	cas, err := index(q, "cas")
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	opts.CAS = cas
	if q.Has("flags") {
		if opts.Flags, err = strconv.ParseUint(q.Get("flags"), 10, 64); err != nil {
			h.writeError(w, r, fmt.Errorf("%w: query parameter flags=%q is not an unsigned 64-bit integer", resource.ErrBadRequest, q.Get("flags")))
			return
		}
	}
	value, err := h.readValue(w, r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	e, err := h.store.Put(r.Context(), r.PathValue("key"), value, opts)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	h.writeJSON(w, 0, e)
}

// readValue reads a body of at most the store's value limit; a larger one
// is refused without being read, when its length is declared.
func (h *Handler) readValue(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	limit := h.store.MaxValueSize()
	tooLarge := func(n string) error {
		return fmt.Errorf("%w: the value of key %s is %s bytes, more than the limit of %d",
			resource.ErrTooLarge, quoteKey(r.PathValue("key")), n, limit)
	}
	if r.ContentLength > int64(limit) {
		return nil, tooLarge(strconv.FormatInt(r.ContentLength, 10))
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(limit)))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, tooLarge("more than " + strconv.Itoa(limit))
		}
		return nil, fmt.Errorf("%w: reading the body: %v", resource.ErrBadRequest, err)
	}
	return data, nil
}

func (h *Handler) delete(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	cas, err := index(q, "cas")
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	n, rev, err := h.store.Delete(r.Context(), r.PathValue("key"), DeleteOptions{Recurse: flag(q, "recurse"), CAS: cas})
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	h.writeJSON(w, 0, DeleteResult{Deleted: n, Index: rev})
}

func (h *Handler) rollback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	to, err := index(q, "rollback")
	if err == nil && to == nil {
		err = fmt.Errorf("%w: POST /v1/kv/{key} needs ?rollback=INDEX, the index of the version to restore", resource.ErrBadRequest)
	}
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	cas, err := index(q, "cas")
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	e, err := h.store.Rollback(r.Context(), r.PathValue("key"), *to, cas)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	h.writeJSON(w, 0, e)
}

// watch streams the events of a key or prefix as newline-delimited JSON
// until the client leaves, the watch ends with an ERROR, or the server
// shuts down. Without ?index it starts with the current entries as PUT;
// the X-Sluice-Index header says the revision the stream follows from.
func (h *Handler) watch(w http.ResponseWriter, r *http.Request, key string, prefix bool) {
	after, err := index(r.URL.Query(), "index")
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	defer context.AfterFunc(h.watches, cancel)()
	var initial []Entry
	var rev int64
	if after != nil && *after > 0 {
		rev = *after
	} else if initial, rev, err = h.store.snapshot(ctx, key, prefix); err != nil {
		h.writeError(w, r, err)
		return
	}
	events, err := h.store.Watch(ctx, key, prefix, rev)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	rc := http.NewResponseController(w)
	w.Header().Set(IndexHeader, strconv.FormatInt(rev, 10))
	w.Header().Set("Content-Type", WatchContentType)
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	for i := range initial {
		if enc.Encode(WireEvent{Type: Put, Entry: &initial[i]}) != nil {
			return
		}
	}
	if rc.Flush() != nil {
		return
	}
	// The events end when ctx does: the client left or the server shuts down.
	for ev := range events {
		out := WireEvent{Type: ev.Type, Entry: &ev.Entry}
		if ev.Type == Error {
			out.Entry, out.Error = nil, wireStatus(ev.Err)
			h.log.Debug("kv watch ends", "key", key, "prefix", prefix, "err", ev.Err)
		}
		if enc.Encode(out) != nil {
			return
		}
		// Write what is already queued before flushing, so a burst costs one flush.
		if len(events) == 0 && rc.Flush() != nil {
			return
		}
	}
}

// wireStatus is the Status an ERROR event carries; an unavailable etcd is
// reported without its detail, as in error responses.
func wireStatus(err error) *resource.Status {
	st := resource.StatusOf(err)
	if errors.Is(err, resource.ErrUnavailable) {
		st = &resource.Status{Code: st.Code, Reason: st.Reason, Message: "the store is unavailable; retry later"}
	}
	return st
}
