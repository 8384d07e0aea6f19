// Package client is the Go client of Sluice's REST API: discovery, the verbs
// of every kind, server-side apply and watch streams. It decodes into
// whatever the caller passes (typed objects, maps or unstructured), and turns
// error responses back into *resource.Status, so errors.Is(err,
// resource.ErrConflict) works on the client side too.
package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/sluice/sluice/internal/resource"
)

// Resource names the REST collection of a kind.
type Resource struct {
	Group   string
	Version string
	Plural  string
}

// ResourceOf returns the collection of a registered kind.
func ResourceOf(k *resource.Kind) Resource {
	return Resource{Group: k.Group, Version: k.Version, Plural: k.Plural}
}

// Path returns the REST path of the collection in a namespace (all namespaces
// when empty), of one object when name is set, and of its subresource.
func (r Resource) Path(namespace, name, subresource string) string {
	p := "/apis/" + r.Group + "/" + r.Version
	if r.Group == "" {
		p = "/api/" + r.Version
	}
	if namespace != "" {
		p += "/namespaces/" + url.PathEscape(namespace)
	}
	p += "/" + r.Plural
	if name != "" {
		p += "/" + url.PathEscape(name)
		if subresource != "" {
			p += "/" + subresource
		}
	}
	return p
}

// Client talks to one Sluice server.
type Client struct {
	base  *url.URL
	token string
	http  *http.Client
}

// New returns a client of the server at serverURL (e.g. http://127.0.0.1:7070),
// authenticating with token when it is not empty.
func New(serverURL, token string) (*Client, error) {
	u, err := url.Parse(serverURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("client: server URL %q: want http(s)://host:port", serverURL)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	return &Client{base: u, token: token, http: &http.Client{}}, nil
}

// Server returns the server URL.
func (c *Client) Server() string { return c.base.String() }

func (c *Client) newRequest(ctx context.Context, method, path string, query url.Values, body []byte, contentType string) (*http.Request, error) {
	u := *c.base
	u.Path += path
	u.RawQuery = query.Encode()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	return req, nil
}

// Do sends a request and decodes a 2xx JSON response into out (if not nil).
// Any other status comes back as a *resource.Status error. It returns the
// status code.
func (c *Client) Do(ctx context.Context, method, path string, query url.Values, body []byte, contentType string, out any) (int, error) {
	req, err := c.newRequest(ctx, method, path, query, body, contentType)
	if err != nil {
		return 0, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", resource.ErrUnavailable, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, fmt.Errorf("%w: reading the response: %w", resource.ErrUnavailable, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, statusError(resp.StatusCode, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, fmt.Errorf("client: decode response of %s %s: %w", method, path, err)
		}
	}
	return resp.StatusCode, nil
}

// statusError decodes an error body, or makes a Status of a body that is not one.
func statusError(code int, data []byte) error {
	var st resource.Status
	if err := json.Unmarshal(data, &st); err == nil && st.Code != 0 {
		return &st
	}
	msg := strings.TrimSpace(string(data))
	if msg == "" {
		msg = http.StatusText(code)
	}
	return &resource.Status{Code: code, Reason: http.StatusText(code), Message: msg}
}

func writeQuery(dryRun bool) url.Values {
	q := url.Values{}
	if dryRun {
		q.Set("dryRun", "All")
	}
	return q
}

func marshal(obj any) ([]byte, error) {
	if raw, ok := obj.(json.RawMessage); ok {
		return raw, nil
	}
	return json.Marshal(obj)
}

// Discover lists the kinds the server serves.
func (c *Client) Discover(ctx context.Context) ([]resource.APIResource, error) {
	var d resource.Discovery
	if _, err := c.Do(ctx, http.MethodGet, "/apis", nil, nil, "", &d); err != nil {
		return nil, err
	}
	return d.Resources, nil
}

// Get reads one object into out.
func (c *Client) Get(ctx context.Context, r Resource, namespace, name string, out any) error {
	_, err := c.Do(ctx, http.MethodGet, r.Path(namespace, name, ""), nil, nil, "", out)
	return err
}

// List reads the objects of a collection (all namespaces when namespace is
// empty) matching a label selector into out, a list object.
func (c *Client) List(ctx context.Context, r Resource, namespace, labelSelector string, out any) error {
	q := url.Values{}
	if labelSelector != "" {
		q.Set("labelSelector", labelSelector)
	}
	_, err := c.Do(ctx, http.MethodGet, r.Path(namespace, "", ""), q, nil, "", out)
	return err
}

// Create creates obj in namespace and decodes the stored object into out.
func (c *Client) Create(ctx context.Context, r Resource, namespace string, obj, out any, dryRun bool) error {
	body, err := marshal(obj)
	if err != nil {
		return err
	}
	_, err = c.Do(ctx, http.MethodPost, r.Path(namespace, "", ""), writeQuery(dryRun), body, "application/json", out)
	return err
}

// Update replaces the object named name with obj.
func (c *Client) Update(ctx context.Context, r Resource, namespace, name string, obj, out any, dryRun bool) error {
	body, err := marshal(obj)
	if err != nil {
		return err
	}
	_, err = c.Do(ctx, http.MethodPut, r.Path(namespace, name, ""), writeQuery(dryRun), body, "application/json", out)
	return err
}

// UpdateStatus replaces the status of the object named name with obj's.
func (c *Client) UpdateStatus(ctx context.Context, r Resource, namespace, name string, obj, out any) error {
	body, err := marshal(obj)
	if err != nil {
		return err
	}
	_, err = c.Do(ctx, http.MethodPut, r.Path(namespace, name, "status"), nil, body, "application/json", out)
	return err
}

// Apply creates the object or makes it match obj (server-side apply), and
// says whether it was created.
func (c *Client) Apply(ctx context.Context, r Resource, namespace, name string, obj, out any, dryRun bool) (created bool, err error) {
	body, err := marshal(obj)
	if err != nil {
		return false, err
	}
	code, err := c.Do(ctx, http.MethodPatch, r.Path(namespace, name, ""), writeQuery(dryRun), body, "application/apply-patch+yaml", out)
	return code == http.StatusCreated, err
}

// Preconditions guard a delete.
type Preconditions struct {
	ResourceVersion string
	UID             types.UID
}

// Delete deletes the object named name and decodes it, as it was, into out.
func (c *Client) Delete(ctx context.Context, r Resource, namespace, name string, pre *Preconditions, out any, dryRun bool) error {
	var body []byte
	if pre != nil {
		p := map[string]string{}
		if pre.ResourceVersion != "" {
			p["resourceVersion"] = pre.ResourceVersion
		}
		if pre.UID != "" {
			p["uid"] = string(pre.UID)
		}
		body, _ = json.Marshal(map[string]any{"preconditions": p})
	}
	_, err := c.Do(ctx, http.MethodDelete, r.Path(namespace, name, ""), writeQuery(dryRun), body, "application/json", out)
	return err
}

// WatchOptions select what a watch sees.
type WatchOptions struct {
	// ResourceVersion to resume after; empty starts with the current objects as ADDED.
	ResourceVersion string
	LabelSelector   string
	// Timeout asks the server to end the stream after this long (0: never).
	Timeout time.Duration
}

// Event is one event of a watch stream; Object is the raw JSON object, a
// resource.Status for ERROR events.
type Event struct {
	Type   string          `json:"type"`
	Object json.RawMessage `json:"object"`
}

// Err returns the error an ERROR event carries, nil for other events.
func (e Event) Err() error {
	if e.Type != "ERROR" {
		return nil
	}
	var st resource.Status
	if err := json.Unmarshal(e.Object, &st); err != nil || st.Code == 0 {
		return fmt.Errorf("client: malformed ERROR event: %s", e.Object)
	}
	return &st
}

// Watch is an open watch stream.
type Watch struct {
	body io.ReadCloser
	sc   *bufio.Scanner
}

// Watch opens a watch stream on a collection.
func (c *Client) Watch(ctx context.Context, r Resource, namespace string, opts WatchOptions) (*Watch, error) {
	q := url.Values{"watch": {"true"}}
	if opts.ResourceVersion != "" {
		q.Set("resourceVersion", opts.ResourceVersion)
	}
	if opts.LabelSelector != "" {
		q.Set("labelSelector", opts.LabelSelector)
	}
	if opts.Timeout > 0 {
		q.Set("timeoutSeconds", fmt.Sprint(int(opts.Timeout.Seconds())))
	}
	w, _, err := c.openStream(ctx, r.Path(namespace, "", ""), q)
	return w, err
}

// openStream sends a GET that answers a stream of JSON lines, and returns
// the stream and the response's header.
func (c *Client) openStream(ctx context.Context, path string, q url.Values) (*Watch, http.Header, error) {
	req, err := c.newRequest(ctx, http.MethodGet, path, q, nil, "")
	if err != nil {
		return nil, nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", resource.ErrUnavailable, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		return nil, nil, statusError(resp.StatusCode, data)
	}
	sc := bufio.NewScanner(resp.Body)
	// An event holds one object, which the server bounds by its body limit
	// plus status; allow well beyond the default 3 MiB.
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	return &Watch{body: resp.Body, sc: sc}, resp.Header, nil
}

// ErrWatchClosed says the stream ended: the server closed it or the
// connection dropped. Resume from the last resourceVersion seen.
var ErrWatchClosed = errors.New("watch stream closed")

// Next blocks for the next event. It returns ErrWatchClosed (possibly
// wrapping the cause) when the stream ends.
func (w *Watch) Next() (Event, error) {
	var ev Event
	err := w.next(&ev)
	return ev, err
}

// next decodes the next line of the stream into v.
func (w *Watch) next(v any) error {
	if !w.sc.Scan() {
		if err := w.sc.Err(); err != nil {
			return fmt.Errorf("%w: %w", ErrWatchClosed, err)
		}
		return ErrWatchClosed
	}
	if err := json.Unmarshal(w.sc.Bytes(), v); err != nil {
		return fmt.Errorf("client: malformed watch event: %w", err)
	}
	return nil
}

// Close ends the stream.
func (w *Watch) Close() error { return w.body.Close() }
