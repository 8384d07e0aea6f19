package consul

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/hashicorp/consul/api"

	"github.com/sluice/sluice/internal/kv"
	"github.com/sluice/sluice/internal/resource"
)

// Consul's KV API over the config center (package kv): the same entries the
// native /v1/kv serves. ModifyIndex and CreateIndex are etcd revisions, so a
// CAS index read through either API works in the other. Sessions (?acquire,
// ?release) are not supported; LockIndex is always 0.

// kvKey is the key of a KV request: the path after /v1/kv/.
func kvKey(r *http.Request) string { return r.PathValue("key") }

// kvGet serves GET /v1/kv/{key}: one entry, ?recurse for a prefix, ?keys
// (with ?separator) for key names, ?raw for the bare value; blocking with
// ?index and ?wait.
func (f *Facade) kvGet(w http.ResponseWriter, r *http.Request) {
	key := kvKey(r)
	params := r.URL.Query()
	_, keys := params["keys"]
	_, recurse := params["recurse"]
	if !keys && !recurse && key == "" {
		f.writeError(w, r, badRequest("Missing key name"))
		return
	}
	q, err := parseBlocking(r)
	if err != nil {
		f.writeError(w, r, err)
		return
	}
	prefix := keys || recurse
	minRev, changed, err := f.awaitChange(r.Context(), q, func(ctx context.Context, after int64) (int64, error) {
		return f.kv.WaitIndex(ctx, key, prefix, after)
	})
	if err != nil {
		f.writeError(w, r, err)
		return
	}
	var sep string
	if keys {
		sep = params.Get("separator")
		if _, ok := params["seperator"]; ok && sep == "" { // Consul still takes its old spelling
			sep = params.Get("seperator")
		}
	}
	mode := "get"
	switch {
	case keys:
		mode = "keys"
	case recurse:
		mode = "list"
	}
	res, rev, err := f.kvReads.read(r.Context(), mode+"\x00"+key+"\x00"+sep, minRev, func(ctx context.Context) (kvRead, int64, error) {
		return f.readKV(ctx, mode, key, sep)
	})
	if err != nil {
		f.writeError(w, r, kvError(err))
		return
	}
	f.setIndex(w, q, changed, rev, minRev)
	switch {
	case !res.found:
		w.WriteHeader(http.StatusNotFound) // as Consul: no body
	case mode == "get" && params.Has("raw"):
		h := w.Header()
		h.Set("Content-Length", strconv.Itoa(len(res.pairs[0].Value)))
		h.Set("Content-Type", "text/plain")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Content-Security-Policy", "sandbox")
		w.Write(res.pairs[0].Value)
	case mode == "keys":
		f.writeJSON(w, r, res.keys)
	default:
		f.writeJSON(w, r, res.pairs)
	}
}

// kvRead is what a KV read found; blocking queries woken by one change
// share it, so it is never modified.
type kvRead struct {
	found bool
	pairs []*api.KVPair
	keys  []string
}

// readKV reads key as mode says: "get" one entry, "list" the entries under
// it, "keys" the key names under it (cut after sep).
func (f *Facade) readKV(ctx context.Context, mode, key, sep string) (kvRead, int64, error) {
	switch mode {
	case "keys":
		list, rev, err := f.kv.Keys(ctx, key, sep)
		// The root answers an empty list; a prefix with no keys, 404.
		return kvRead{found: len(list) > 0 || key == "", keys: append([]string{}, list...)}, rev, err
	case "list":
		entries, rev, err := f.kv.List(ctx, key)
		pairs := make([]*api.KVPair, len(entries))
		for i, e := range entries {
			pairs[i] = kvPair(e)
		}
		return kvRead{found: len(pairs) > 0, pairs: pairs}, rev, err
	}
	e, rev, err := f.kv.Get(ctx, key)
	if errors.Is(err, resource.ErrNotFound) {
		return kvRead{}, rev, nil
	}
	return kvRead{found: err == nil, pairs: []*api.KVPair{kvPair(e)}}, rev, err
}

// setIndex sets the query headers of a KV read at revision rev: the index a
// blocking client waits on next. When a blocking query's wait passed with no
// change, the index stays the one it asked with.
func (f *Facade) setIndex(w http.ResponseWriter, q blockingQuery, changed bool, rev, minRev int64) {
	if !changed {
		setQueryMeta(w, int64(q.Index))
		return
	}
	setQueryMeta(w, max(rev, minRev))
}

func kvPair(e kv.Entry) *api.KVPair {
	return &api.KVPair{
		Key: e.Key, Value: e.Value, Flags: e.Flags,
		CreateIndex: uint64(e.CreateIndex), ModifyIndex: uint64(e.ModifyIndex),
	}
}

// kvPut serves PUT /v1/kv/{key}: the body is the value; ?flags sets its
// flags, ?cas makes it conditional (the answer is then true or false).
func (f *Facade) kvPut(w http.ResponseWriter, r *http.Request) {
	key := kvKey(r)
	if key == "" {
		f.writeError(w, r, badRequest("Missing key name"))
		return
	}
	params := r.URL.Query()
	if conflicting(params, "cas", "acquire", "release") {
		f.writeError(w, r, badRequest("Conflicting flags: %v\n", params.Encode()))
		return
	}
	if _, ok := params["acquire"]; ok {
		f.writeError(w, r, badRequest("Sluice does not support sessions: ?acquire and ?release are not available"))
		return
	}
	if _, ok := params["release"]; ok {
		f.writeError(w, r, badRequest("Sluice does not support sessions: ?acquire and ?release are not available"))
		return
	}
	var opts kv.PutOptions
	if s, ok := params["flags"]; ok {
		n, err := strconv.ParseUint(s[0], 10, 64)
		if err != nil {
			f.writeError(w, r, badRequest("Invalid flags: %v", err))
			return
		}
		opts.Flags = n
	}
	cas, err := casParam(params)
	if err != nil {
		f.writeError(w, r, err)
		return
	}
	opts.CAS = cas
	limit := int64(f.kv.MaxValueSize())
	if r.ContentLength > limit {
		f.writeError(w, r, tooLarge(r.ContentLength, limit))
		return
	}
	value, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		f.writeError(w, r, err)
		return
	}
	if int64(len(value)) > limit {
		f.writeError(w, r, tooLarge(int64(len(value)), limit))
		return
	}
	_, err = f.kv.Put(r.Context(), key, value, opts)
	switch {
	case err == nil:
		f.writeJSON(w, r, true)
	case cas != nil && (errors.Is(err, resource.ErrConflict) || errors.Is(err, resource.ErrNotFound)):
		f.writeJSON(w, r, false) // as Consul: a failed CAS is a false, not an error
	default:
		f.writeError(w, r, kvError(err))
	}
}

// kvDelete serves DELETE /v1/kv/{key}: one key, ?recurse for a prefix, ?cas
// for a conditional delete (answered true or false).
func (f *Facade) kvDelete(w http.ResponseWriter, r *http.Request) {
	key := kvKey(r)
	params := r.URL.Query()
	if conflicting(params, "recurse", "cas") {
		f.writeError(w, r, badRequest("Conflicting flags: %v\n", params.Encode()))
		return
	}
	_, recurse := params["recurse"]
	if !recurse && key == "" {
		f.writeError(w, r, badRequest("Missing key name"))
		return
	}
	cas, err := casParam(params)
	if err != nil {
		f.writeError(w, r, err)
		return
	}
	_, _, err = f.kv.Delete(r.Context(), key, kv.DeleteOptions{Recurse: recurse, CAS: cas})
	switch {
	case err == nil, errors.Is(err, resource.ErrNotFound) && (cas == nil || *cas == 0):
		// Deleting what is not there succeeds, as in Consul.
		f.writeJSON(w, r, true)
	case cas != nil && (errors.Is(err, resource.ErrConflict) || errors.Is(err, resource.ErrNotFound)):
		f.writeJSON(w, r, false)
	default:
		f.writeError(w, r, kvError(err))
	}
}

// casParam reads ?cas, nil when absent.
func casParam(params map[string][]string) (*int64, error) {
	s, ok := params["cas"]
	if !ok {
		return nil, nil
	}
	n, err := strconv.ParseInt(s[0], 10, 64)
	if err != nil || n < 0 {
		return nil, badRequest("Invalid cas index %q: must be a modify index (0 to create only)", s[0])
	}
	return &n, nil
}

// conflicting reports whether more than one of flags is set, which Consul
// refuses.
func conflicting(params map[string][]string, flags ...string) bool {
	n := 0
	for _, f := range flags {
		if _, ok := params[f]; ok {
			n++
		}
	}
	return n > 1
}

func tooLarge(size, limit int64) error {
	return errorf(http.StatusRequestEntityTooLarge,
		"Request body(%d bytes) too large, max size: %d bytes. See https://developer.hashicorp.com/docs/agent/config/config-files#kv_max_value_size.", size, limit)
}

// kvError words the config center's refusals as Consul's 400s.
func kvError(err error) error {
	if errors.Is(err, resource.ErrInvalid) || errors.Is(err, resource.ErrBadRequest) {
		return badRequest("%s", strings.TrimPrefix(strings.TrimPrefix(err.Error(), resource.ErrInvalid.Error()+": "), "kv: "))
	}
	if errors.Is(err, resource.ErrTooLarge) {
		return errorf(http.StatusRequestEntityTooLarge, "%s", err.Error())
	}
	return fmt.Errorf("kv: %w", err)
}
