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

// kvPath is the path of a key in the KV API, or of a prefix. The key is
// checked first, as the server would: an invalid one may not even reach
// it unchanged (a path with "//" is redirected).
func kvPath(key string, prefix bool) (string, error) {
	check := kv.ValidateKey
	if prefix {
		check = kv.ValidatePrefix
	}
	return "/v1/kv/" + key, check(key)
}

// kvDo sends a KV request for key (or prefix) and decodes the answer into out.
func (c *Client) kvDo(ctx context.Context, method, key string, prefix bool, q url.Values, body []byte, out any) error {
	path, err := kvPath(key, prefix)
	if err != nil {
		return err
	}
	contentType := ""
	if body != nil {
		contentType = "application/octet-stream"
	}
	_, err = c.Do(ctx, method, path, q, body, contentType, out)
	return err
}

func casQuery(q url.Values, cas *int64) url.Values {
	if cas != nil {
		q.Set("cas", strconv.FormatInt(*cas, 10))
	}
	return q
}

// KVGet reads one entry.
func (c *Client) KVGet(ctx context.Context, key string) (kv.Entry, error) {
	var e kv.Entry
	err := c.kvDo(ctx, http.MethodGet, key, false, nil, nil, &e)
	return e, err
}

// KVList reads the entries under a prefix ("" for all).
func (c *Client) KVList(ctx context.Context, prefix string) (kv.List, error) {
	var l kv.List
	err := c.kvDo(ctx, http.MethodGet, prefix, true, url.Values{"recurse": {""}}, nil, &l)
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
	err := c.kvDo(ctx, http.MethodGet, prefix, true, q, nil, &l)
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
	err := c.kvDo(ctx, http.MethodPut, key, false, q, value, &e)
	return e, err
}

// KVDelete deletes a key, or with Recurse the keys under a prefix.
func (c *Client) KVDelete(ctx context.Context, key string, opts kv.DeleteOptions) (kv.DeleteResult, error) {
	q := casQuery(url.Values{}, opts.CAS)
	if opts.Recurse {
		q.Set("recurse", "")
	}
	var res kv.DeleteResult
	err := c.kvDo(ctx, http.MethodDelete, key, opts.Recurse, q, nil, &res)
	return res, err
}

// KVHistory reads the versions of a key, newest first.
func (c *Client) KVHistory(ctx context.Context, key string) (kv.History, error) {
	var h kv.History
	err := c.kvDo(ctx, http.MethodGet, key, false, url.Values{"history": {""}}, nil, &h)
	return h, err
}

// KVRollback writes the version of a key at index as its new value.
func (c *Client) KVRollback(ctx context.Context, key string, index int64, cas *int64) (kv.Entry, error) {
	q := casQuery(url.Values{"rollback": {strconv.FormatInt(index, 10)}}, cas)
	var e kv.Entry
	err := c.kvDo(ctx, http.MethodPost, key, false, q, nil, &e)
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
	path, err := kvPath(key, prefix)
	if err != nil {
		return nil, err
	}
	w, header, err := c.openStream(ctx, path, q)
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
