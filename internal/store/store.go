package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/lru"

	"github.com/sluice/sluice/internal/resource"
)

// Prefix is the etcd key prefix of every resource.
const Prefix = "/sluice/resources/"

// maxUpdateRetries bounds how often an update without a resourceVersion
// precondition is retried when it races another writer.
const maxUpdateRetries = 8

// Options configure a Store.
type Options struct {
	Logger *slog.Logger
	// BookmarkInterval is how often watchers receive a BOOKMARK (default 10s).
	BookmarkInterval time.Duration
	// Registerer receives the store's metrics (none when nil).
	Registerer prometheus.Registerer
}

// Store reads and writes resources in etcd.
type Store struct {
	client           *clientv3.Client
	kinds            *resource.Registry
	log              *slog.Logger
	bookmarkInterval time.Duration
	metrics          *metrics
	now              func() time.Time
	watches          atomic.Int64 // open watches, so Run skips idle bookmark rounds

	// recent holds, by key, the last value this store wrote or read. A key
	// at a mod revision names one value forever in etcd's MVCC, so an update
	// whose resourceVersion is that revision takes its base from here and
	// skips a read: a stale entry can only fail the transaction's compare,
	// never write a wrong object.
	recent *lru.Cache

	hubsMu sync.Mutex              // guards hubs
	hubs   map[*resource.Kind]*hub // the running hub of each kind
}

// recentSize bounds the entries of Store.recent.
const recentSize = 8192

// stored is an object as etcd holds it. obj is never handed out or changed:
// callers get copies.
type stored struct {
	obj    resource.Object
	data   []byte
	modRev int64
}

// New returns a Store over an etcd client. Call Run to deliver bookmarks.
func New(client *clientv3.Client, kinds *resource.Registry, opts Options) *Store {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.BookmarkInterval <= 0 {
		opts.BookmarkInterval = 10 * time.Second
	}
	return &Store{
		client:           client,
		kinds:            kinds,
		log:              opts.Logger,
		bookmarkInterval: opts.BookmarkInterval,
		metrics:          newMetrics(opts.Registerer),
		now:              time.Now,
		recent:           lru.New(recentSize),
		hubs:             map[*resource.Kind]*hub{},
	}
}

// Kinds returns the registry of kinds the store accepts.
func (s *Store) Kinds() *resource.Registry { return s.kinds }

// Client returns the etcd client, for components that keep their own keys
// (leases, KV) beside the resources.
func (s *Store) Client() *clientv3.Client { return s.client }

// WriteOptions modify a write.
type WriteOptions struct {
	// DryRun defaults and validates but writes nothing.
	DryRun bool
}

// Preconditions guard a delete.
type Preconditions struct {
	ResourceVersion string
	UID             types.UID
}

func kindKey(k *resource.Kind) string {
	group := k.Group
	if group == "" {
		group = "core"
	}
	return Prefix + group + "/" + k.Kind + "/"
}

func objectKey(k *resource.Kind, namespace, name string) string {
	return kindKey(k) + namespace + "/" + name
}

// prefixFor is the key prefix of a kind's objects in one namespace, or in all
// namespaces when namespace is empty.
func prefixFor(k *resource.Kind, namespace string) string {
	if namespace == "" {
		return kindKey(k)
	}
	return kindKey(k) + namespace + "/"
}

func formatRev(rev int64) string { return strconv.FormatInt(rev, 10) }

// ParseResourceVersion parses a resourceVersion; "" is 0.
func ParseResourceVersion(rv string) (int64, error) {
	if rv == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(rv, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%w: resourceVersion %q is not a non-negative integer", resource.ErrBadRequest, rv)
	}
	return n, nil
}

// kindOf finds the registered kind of obj from its apiVersion and kind.
func (s *Store) kindOf(obj resource.Object) (*resource.Kind, error) {
	gvk := obj.GetObjectKind().GroupVersionKind()
	k, ok := s.kinds.ByGVK(gvk)
	if !ok {
		return nil, fmt.Errorf("%w: kind %q of apiVersion %q is not served", resource.ErrNotFound, gvk.Kind, gvk.GroupVersion().String())
	}
	return k, nil
}

func notFound(k *resource.Kind, namespace, name string) error {
	return fmt.Errorf("%w: %s %q in namespace %q", resource.ErrNotFound, k, name, namespace)
}

// Get reads one object.
func (s *Store) Get(ctx context.Context, k *resource.Kind, namespace, name string) (resource.Object, error) {
	defer s.metrics.observe("get", k, time.Now())
	cur, err := s.read(ctx, k, objectKey(k, namespace, name))
	if err != nil {
		return nil, err
	}
	if cur == nil {
		return nil, notFound(k, namespace, name)
	}
	return copyOf(cur.obj), nil
}

func copyOf(obj resource.Object) resource.Object { return obj.DeepCopyObject().(resource.Object) }

// read returns the current value of key (a linearizable read), or nil when
// there is none.
func (s *Store) read(ctx context.Context, k *resource.Kind, key string) (*stored, error) {
	resp, err := s.client.Get(ctx, key)
	if err != nil {
		return nil, EtcdError("get", err)
	}
	if len(resp.Kvs) == 0 {
		return nil, nil
	}
	kv := resp.Kvs[0]
	if c, ok := s.cached(key, kv.ModRevision); ok {
		return c, nil
	}
	obj, err := decode(k, kv.Value, kv.ModRevision)
	if err != nil {
		return nil, err
	}
	cur := &stored{obj: obj, data: kv.Value, modRev: kv.ModRevision}
	s.recent.Add(key, cur)
	return cur, nil
}

// cached returns the remembered value of key if it is the one at modRev.
func (s *Store) cached(key string, modRev int64) (*stored, bool) {
	v, ok := s.recent.Get(key)
	if !ok {
		return nil, false
	}
	c := v.(*stored)
	return c, c.modRev == modRev
}

// remember keeps a copy of obj, just written as data at modRev.
func (s *Store) remember(key string, obj resource.Object, data []byte, modRev int64) {
	s.recent.Add(key, &stored{obj: copyOf(obj), data: data, modRev: modRev})
}

// EtcdError wraps a failed etcd operation op for the API: an etcd that is
// unreachable or times out is ErrUnavailable (503 rather than 500). Other
// packages that talk to etcd directly (kv, registry) classify errors with it.
func EtcdError(op string, err error) error {
	if errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("store: %s: %w", op, err)
	}
	return fmt.Errorf("store: %s: %w: %w", op, resource.ErrUnavailable, err)
}

// prepareCreate defaults and validates a copy of obj as a new object.
func (s *Store) prepareCreate(k *resource.Kind, in resource.Object) (resource.Object, error) {
	obj := in.DeepCopyObject().(resource.Object)
	if obj.GetNamespace() == "" {
		obj.SetNamespace(resource.DefaultNamespace)
	}
	// Status is the server's to write: a new object starts with the default.
	setStatus(obj, nil)
	obj.SetUID(types.UID(uuid.NewString()))
	obj.SetCreationTimestamp(metav1.NewTime(s.now().UTC().Truncate(time.Second)))
	obj.SetGeneration(1)
	obj.SetResourceVersion("")
	obj.SetDeletionTimestamp(nil)
	obj.SetManagedFields(nil)
	k.Default(obj)
	if errs := k.Validate(obj); len(errs) > 0 {
		return nil, resource.NewInvalid(k, obj.GetName(), errs)
	}
	return obj, nil
}

// Create stores a new object. Its namespace defaults to "default"; uid,
// creationTimestamp, generation and (for kinds with status) status are set by
// the store, whatever the caller sent.
func (s *Store) Create(ctx context.Context, in resource.Object, opts WriteOptions) (resource.Object, error) {
	k, err := s.kindOf(in)
	if err != nil {
		return nil, err
	}
	defer s.metrics.observe("create", k, time.Now())
	obj, err := s.prepareCreate(k, in)
	if err != nil {
		return nil, err
	}
	if opts.DryRun {
		return obj, nil
	}
	data, err := encode(obj)
	if err != nil {
		return nil, err
	}
	key := objectKey(k, obj.GetNamespace(), obj.GetName())
	resp, err := s.client.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, string(data))).
		Commit()
	if err != nil {
		return nil, EtcdError("create", err)
	}
	if !resp.Succeeded {
		return nil, fmt.Errorf("%w: %s %q in namespace %q", resource.ErrAlreadyExists, k, obj.GetName(), obj.GetNamespace())
	}
	obj.SetResourceVersion(formatRev(resp.Header.Revision))
	s.remember(key, obj, data, resp.Header.Revision)
	return obj, nil
}

// Update replaces an object's spec, labels and annotations. With a
// resourceVersion, the update holds only if the object is still at that
// version (else ErrConflict); without one, it applies to the current version.
// Status and server-set metadata are kept. An update that changes nothing
// writes nothing and keeps the resourceVersion.
func (s *Store) Update(ctx context.Context, in resource.Object, opts WriteOptions) (resource.Object, error) {
	return s.update(ctx, in, opts, false)
}

// UpdateStatus replaces an object's status and nothing else.
func (s *Store) UpdateStatus(ctx context.Context, in resource.Object, opts WriteOptions) (resource.Object, error) {
	return s.update(ctx, in, opts, true)
}

func (s *Store) update(ctx context.Context, in resource.Object, opts WriteOptions, status bool) (resource.Object, error) {
	k, err := s.kindOf(in)
	if err != nil {
		return nil, err
	}
	op := "update"
	if status {
		op = "update_status"
		if !k.HasStatus {
			return nil, fmt.Errorf("%w: %s has no status subresource", resource.ErrNotFound, k)
		}
	}
	defer s.metrics.observe(op, k, time.Now())
	namespace := in.GetNamespace()
	if namespace == "" {
		namespace = resource.DefaultNamespace
	}
	wantRV, err := ParseResourceVersion(in.GetResourceVersion())
	if err != nil {
		return nil, err
	}
	key := objectKey(k, namespace, in.GetName())
	for attempt := 0; ; attempt++ {
		cur, hit := s.cached(key, wantRV)
		if !hit || wantRV == 0 || attempt > 0 {
			if cur, err = s.read(ctx, k, key); err != nil {
				return nil, err
			}
		}
		if cur == nil {
			return nil, notFound(k, namespace, in.GetName())
		}
		if wantRV != 0 && wantRV != cur.modRev {
			return nil, conflict(k, cur.obj, wantRV)
		}
		if uid := in.GetUID(); uid != "" && uid != cur.obj.GetUID() {
			return nil, fmt.Errorf("%w: %s %q: uid %s does not match the stored object's %s", resource.ErrConflict, k, in.GetName(), uid, cur.obj.GetUID())
		}
		var next resource.Object
		var data []byte
		if status {
			next, data, err = s.prepareStatus(k, in, cur)
		} else {
			next, data, err = s.prepareUpdate(k, in, cur)
		}
		if err != nil {
			return nil, err
		}
		if bytes.Equal(data, cur.data) {
			// Nothing changes: no write, the resourceVersion stays.
			return copyOf(cur.obj), nil
		}
		if opts.DryRun {
			return next, nil
		}
		resp, err := s.client.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(key), "=", cur.modRev)).
			Then(clientv3.OpPut(key, string(data))).
			Commit()
		if err != nil {
			return nil, EtcdError(op, err)
		}
		if resp.Succeeded {
			next.SetResourceVersion(formatRev(resp.Header.Revision))
			s.remember(key, next, data, resp.Header.Revision)
			return next, nil
		}
		if wantRV != 0 || attempt >= maxUpdateRetries {
			return nil, fmt.Errorf("%w: %s %q in namespace %q was modified concurrently; read it again and retry", resource.ErrConflict, k, in.GetName(), namespace)
		}
	}
}

func conflict(k *resource.Kind, cur resource.Object, wantRV int64) error {
	return fmt.Errorf("%w: %s %q in namespace %q: resourceVersion %d is stale, the object is at %s; read it again and retry",
		resource.ErrConflict, k, cur.GetName(), cur.GetNamespace(), wantRV, cur.GetResourceVersion())
}

// prepareUpdate builds, and encodes, the object an update of cur with in
// would store.
func (s *Store) prepareUpdate(k *resource.Kind, in resource.Object, cur *stored) (resource.Object, []byte, error) {
	next := copyOf(in)
	next.SetNamespace(cur.obj.GetNamespace())
	next.SetUID(cur.obj.GetUID())
	next.SetCreationTimestamp(cur.obj.GetCreationTimestamp())
	next.SetDeletionTimestamp(cur.obj.GetDeletionTimestamp())
	next.SetManagedFields(nil)
	next.SetResourceVersion(cur.obj.GetResourceVersion())
	next.SetGeneration(cur.obj.GetGeneration())
	setStatus(next, cur.obj)
	k.Default(next)
	if errs := k.Validate(next); len(errs) > 0 {
		return nil, nil, resource.NewInvalid(k, next.GetName(), errs)
	}
	if !specEqual(cur.obj, next) {
		next.SetGeneration(cur.obj.GetGeneration() + 1)
	}
	data, err := encode(next)
	return next, data, err
}

// prepareStatus builds, and encodes, cur with the status of in.
func (s *Store) prepareStatus(k *resource.Kind, in resource.Object, cur *stored) (resource.Object, []byte, error) {
	next := copyOf(cur.obj)
	setStatus(next, in)
	k.Default(next)
	if errs := k.ValidateStatus(next); len(errs) > 0 {
		return nil, nil, resource.NewInvalid(k, next.GetName(), errs)
	}
	data, err := encode(next)
	return next, data, err
}

// Apply makes the stored object match in: it creates the object if it does
// not exist and otherwise updates it as Update does. Applying the same
// document twice changes nothing the second time, not even the
// resourceVersion. created says whether the object was new.
func (s *Store) Apply(ctx context.Context, in resource.Object, opts WriteOptions) (obj resource.Object, created bool, err error) {
	if _, err := s.kindOf(in); err != nil {
		return nil, false, err
	}
	for {
		obj, err = s.Update(ctx, in, opts)
		if !errors.Is(err, resource.ErrNotFound) || in.GetResourceVersion() != "" {
			return obj, false, err
		}
		obj, err = s.Create(ctx, in, opts)
		if !errors.Is(err, resource.ErrAlreadyExists) {
			return obj, err == nil, err
		}
		// Created by another writer between our update and create: update it.
	}
}

// Delete removes an object and returns it as it was, with the resourceVersion
// of the deletion.
func (s *Store) Delete(ctx context.Context, k *resource.Kind, namespace, name string, pre Preconditions, opts WriteOptions) (resource.Object, error) {
	defer s.metrics.observe("delete", k, time.Now())
	wantRV, err := ParseResourceVersion(pre.ResourceVersion)
	if err != nil {
		return nil, err
	}
	key := objectKey(k, namespace, name)
	cur, err := s.read(ctx, k, key)
	if err != nil {
		return nil, err
	}
	if cur == nil {
		return nil, notFound(k, namespace, name)
	}
	curRV := cur.modRev
	if wantRV != 0 && wantRV != curRV {
		return nil, conflict(k, cur.obj, wantRV)
	}
	if pre.UID != "" && pre.UID != cur.obj.GetUID() {
		return nil, fmt.Errorf("%w: %s %q: uid %s does not match the stored object's %s", resource.ErrConflict, k, name, pre.UID, cur.obj.GetUID())
	}
	if opts.DryRun {
		return copyOf(cur.obj), nil
	}
	cmp := clientv3.Compare(clientv3.CreateRevision(key), ">", 0)
	if wantRV != 0 || pre.UID != "" {
		cmp = clientv3.Compare(clientv3.ModRevision(key), "=", curRV)
	}
	resp, err := s.client.Txn(ctx).If(cmp).Then(clientv3.OpDelete(key, clientv3.WithPrevKV())).Commit()
	if err != nil {
		return nil, EtcdError("delete", err)
	}
	if !resp.Succeeded {
		if wantRV != 0 || pre.UID != "" {
			return nil, fmt.Errorf("%w: %s %q in namespace %q was modified concurrently", resource.ErrConflict, k, name, namespace)
		}
		return nil, notFound(k, namespace, name)
	}
	s.recent.Remove(key)
	del := resp.Responses[0].GetResponseDeleteRange()
	if len(del.PrevKvs) == 0 {
		return nil, notFound(k, namespace, name)
	}
	obj, err := decode(k, del.PrevKvs[0].Value, resp.Header.Revision)
	if err != nil {
		return nil, err
	}
	return obj, nil
}

// List returns the objects of a kind in a namespace (all namespaces when
// namespace is empty) that match selector (everything when nil), and the
// revision the list was read at.
func (s *Store) List(ctx context.Context, k *resource.Kind, namespace string, selector labels.Selector) ([]resource.Object, int64, error) {
	defer s.metrics.observe("list", k, time.Now())
	resp, err := s.client.Get(ctx, prefixFor(k, namespace), clientv3.WithPrefix())
	if err != nil {
		return nil, 0, EtcdError("list", err)
	}
	objs := make([]resource.Object, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		obj, err := decode(k, kv.Value, kv.ModRevision)
		if err != nil {
			return nil, 0, err
		}
		if selector == nil || selector.Matches(labels.Set(obj.GetLabels())) {
			objs = append(objs, obj)
		}
	}
	return objs, resp.Header.Revision, nil
}

// Revision returns etcd's current revision (a linearizable read).
func (s *Store) Revision(ctx context.Context) (int64, error) {
	resp, err := s.client.Get(ctx, Prefix+"\x00revision-probe", clientv3.WithCountOnly())
	if err != nil {
		return 0, EtcdError("revision", err)
	}
	return resp.Header.Revision, nil
}
