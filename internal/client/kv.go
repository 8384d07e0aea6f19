package client

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"

	"github.com/sluice/sluice/internal/kv"
)

var (
	errMalformedError = errors.New("client: malformed ERROR event: it carries no error")
	errMalformedEvent = errors.New("client: malformed watch event: it carries no entry")
)

// kvPath is the path of a key (or prefix) in the KV API.
func kvPath(key string) string { return "/v1/kv/" + key }

func casQuery(q url.Values, cas *int64) url.Values {
	if cas != nil {
		q.Set("cas", strconv.FormatInt(*cas, 10))
	}
	return q
}

// KVGet reads one entry.
func (c *Client) KVGet(ctx context.Context, key string) (kv.Entry, error) {
	var e kv.Entry
	_, err := c.Do(ctx, http.MethodGet, kvPath(key), nil, nil, "", &e)
	return e, err
}

// KVList reads the entries under a prefix ("" for all).
func (c *Client) KVList(ctx context.Context, prefix string) (kv.List, error) {
	var l kv.List
	_, err := c.Do(ctx, http.MethodGet, kvPath(prefix), url.Values{"recurse": {""}}, nil, "", &l)
	return l, err
}

// KVKeys lists the keys under a prefix, cut after the first separator
// below it when separator is not empty.
func (c *Client) KVKeys(ctx context.Context, prefix, separator string) (kv.KeyList, error) {
	q := url.Values{"keys": {""}}
	if separator != "" {
		q.Set("separator", separator)
	}
	var l kv.KeyList
	_, err := c.Do(ctx, http.MethodGet, kvPath(prefix), q, nil, "", &l)
	return l, err
}

// KVPut writes a value.
func (c *Client) KVPut(ctx context.Context, key string, value []byte, opts kv.PutOptions) (kv.Entry, error) {
	q := casQuery(url.Values{}, opts.CAS)
	if opts.Flags != 0 {
		q.Set("flags", strconv.FormatUint(opts.Flags, 10))
	}
	if value == nil {
		value = []byte{}
	}
	var e kv.Entry
	_, err := c.Do(ctx, http.MethodPut, kvPath(key), q, value, "application/octet-stream", &e)
	return e, err
}

// KVDelete deletes a key, or with Recurse the keys under a prefix.
func (c *Client) KVDelete(ctx context.Context, key string, opts kv.DeleteOptions) (kv.DeleteResult, error) {
	q := casQuery(url.Values{}, opts.CAS)
	if opts.Recurse {
		q.Set("recurse", "")
	}
	var res kv.DeleteResult
	_, err := c.Do(ctx, http.MethodDelete, kvPath(key), q, nil, "", &res)
	return res, err
}

// KVHistory reads the versions of a key, newest first.
func (c *Client) KVHistory(ctx context.Context, key string) (kv.History, error) {
	var h kv.History
	_, err := c.Do(ctx, http.MethodGet, kvPath(key), url.Values{"history": {""}}, nil, "", &h)
	return h, err
}

// KVRollback writes the version of a key at index as its new value.
func (c *Client) KVRollback(ctx context.Context, key string, index int64, cas *int64) (kv.Entry, error) {
	q := casQuery(url.Values{"rollback": {strconv.FormatInt(index, 10)}}, cas)
	var e kv.Entry
	_, err := c.Do(ctx, http.MethodPost, kvPath(key), q, nil, "", &e)
	return e, err
}

// KVWatch is an open watch stream of a key or prefix.
type KVWatch struct {
	w *Watch
	// Index is the revision the stream follows changes after (its initial
	// entries, without an index, are as of that revision).
	Index int64
}

// KVWatch opens a watch of a key, or with prefix of the keys under it,
// after index (0: the current entries first, as PUT).
func (c *Client) KVWatch(ctx context.Context, key string, prefix bool, index int64) (*KVWatch, error) {
	q := url.Values{"watch": {"true"}}
	if prefix {
		q.Set("recurse", "")
	}
	if index > 0 {
		q.Set("index", strconv.FormatInt(index, 10))
	}
	w, header, err := c.openStream(ctx, kvPath(key), q)
	if err != nil {
		return nil, err
	}
	rev, _ := strconv.ParseInt(header.Get(kv.IndexHeader), 10, 64)
	return &KVWatch{w: w, Index: rev}, nil
}

// Next blocks for the next event. An ERROR event comes back as its error
// (a *resource.Status); the end of the stream as ErrWatchClosed.
func (w *KVWatch) Next() (kv.WireEvent, error) {
	var ev kv.WireEvent
	if err := w.w.next(&ev); err != nil {
		return ev, err
	}
	if ev.Type == kv.Error {
		if ev.Error == nil {
			return ev, errMalformedError
		}
		return ev, ev.Error
	}
	if ev.Entry == nil {
		return ev, errMalformedEvent
	}
	return ev, nil
}

// Close ends the stream.
func (w *KVWatch) Close() error { return w.w.Close() }
