package kv

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sluice/sluice/internal/resource"
	"github.com/sluice/sluice/internal/store"
)

// etcd key prefixes of values and of archived versions.
const (
	ValuePrefix   = "/sluice/kv/"
	HistoryPrefix = "/sluice/kvhistory/"
)

// Limits and defaults.
const (
	DefaultHistoryLimit = 20
	DefaultMaxValueSize = 512 << 10
	MaxKeyLength        = 1024
)

// maxWriteAttempts bounds how often a write retries after losing a race with
// another writer of the same key.
const maxWriteAttempts = 64

// Entry is one key's value.
type Entry struct {
	Key   string `json:"key"`
	Value []byte `json:"value"`
	Flags uint64 `json:"flags"`
	// CreateIndex is the etcd revision that created the key (in its current
	// life), ModifyIndex the one that last wrote it.
	CreateIndex int64     `json:"createIndex"`
	ModifyIndex int64     `json:"modifyIndex"`
	Modified    time.Time `json:"modified,omitzero"`
}

// Version is one version of a key, from History.
type Version struct {
	Entry
	// Deleted says this version was ended by a delete.
	Deleted bool `json:"deleted"`
}

// Options configure a Store.
type Options struct {
	// HistoryLimit is how many replaced versions are kept per key, besides
	// the current one (default 20).
	HistoryLimit int
	// MaxValueSize bounds a value in bytes (default 512 KiB).
	MaxValueSize int
	Logger       *slog.Logger
}

// Store reads and writes KV entries in etcd.
type Store struct {
	client       *clientv3.Client
	historyLimit int
	maxValueSize int
	log          *slog.Logger
	now          func() time.Time
	hub          *hub
}

// New returns a Store over an etcd client. Call Run to serve WaitIndex from
// one shared etcd watch.
func New(client *clientv3.Client, opts Options) *Store {
	if opts.HistoryLimit <= 0 {
		opts.HistoryLimit = DefaultHistoryLimit
	}
	if opts.MaxValueSize <= 0 {
		opts.MaxValueSize = DefaultMaxValueSize
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Store{
		client:       client,
		historyLimit: opts.HistoryLimit,
		maxValueSize: opts.MaxValueSize,
		log:          opts.Logger,
		now:          time.Now,
		hub:          newHub(),
	}
}

// MaxValueSize is the largest value Put accepts, in bytes.
func (s *Store) MaxValueSize() int { return s.maxValueSize }

// record is a value as etcd holds it. Archived versions also carry the
// indexes they had and whether a delete ended them.
type record struct {
	Value       []byte    `json:"value"`
	Flags       uint64    `json:"flags,omitempty"`
	Modified    time.Time `json:"modified,omitzero"`
	CreateIndex int64     `json:"createIndex,omitempty"`
	ModifyIndex int64     `json:"modifyIndex,omitempty"`
	Deleted     bool      `json:"deleted,omitempty"`
}

// decodeRecord decodes a stored value. A value that is not a record (written
// to etcd by hand) is taken as the bytes themselves, so it still reads.
func decodeRecord(data []byte) record {
	var rec record
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if len(data) == 0 || data[0] != '{' || dec.Decode(&rec) != nil || dec.More() {
		return record{Value: data}
	}
	return rec
}

func encodeRecord(rec record) string {
	data, err := json.Marshal(rec)
	if err != nil {
		// A record holds bytes, numbers and a time: it always encodes.
		panic(fmt.Sprintf("kv: encode record: %v", err))
	}
	return string(data)
}

// entryOf decodes the value of a key under ValuePrefix.
func entryOf(kv *mvccpb.KeyValue) Entry {
	rec := decodeRecord(kv.Value)
	return Entry{
		Key:         strings.TrimPrefix(string(kv.Key), ValuePrefix),
		Value:       rec.Value,
		Flags:       rec.Flags,
		CreateIndex: kv.CreateRevision,
		ModifyIndex: kv.ModRevision,
		Modified:    rec.Modified,
	}
}

// versionOf decodes an archived version of key.
func versionOf(key string, kv *mvccpb.KeyValue) Version {
	rec := decodeRecord(kv.Value)
	return Version{Entry: Entry{
		Key: key, Value: rec.Value, Flags: rec.Flags,
		CreateIndex: rec.CreateIndex, ModifyIndex: rec.ModifyIndex, Modified: rec.Modified,
	}, Deleted: rec.Deleted}
}

func valueKey(key string) string { return ValuePrefix + key }

// historyStart is the prefix of key's archived versions; NUL cannot occur in
// a key, so no other key's versions share it.
func historyStart(key string) string { return HistoryPrefix + key + "\x00" }

func archiveKey(key string, modRev int64) string {
	return fmt.Sprintf("%s%020d", historyStart(key), modRev)
}

// historyOwner is the key an archived version's etcd key belongs to.
func historyOwner(etcdKey string) string {
	k := strings.TrimPrefix(etcdKey, HistoryPrefix)
	if i := strings.LastIndexByte(k, 0); i >= 0 {
		return k[:i]
	}
	return k
}

// ValidateKey checks a key: non-empty, valid UTF-8, no NUL, no leading "/",
// at most MaxKeyLength bytes, and sendable as a URL path as it is (no empty
// segment inside it, no "." or ".." segment: HTTP servers rewrite those).
func ValidateKey(key string) error {
	if key == "" {
		return fmt.Errorf("%w: a key must not be empty", resource.ErrInvalid)
	}
	return ValidatePrefix(key)
}

// ValidatePrefix checks a key prefix as ValidateKey does a key, but allows "".
func ValidatePrefix(key string) error {
	var reason string
	switch {
	case len(key) > MaxKeyLength:
		reason = fmt.Sprintf("is %d bytes long, more than %d", len(key), MaxKeyLength)
	case !utf8.ValidString(key):
		reason = "is not valid UTF-8"
	case strings.IndexByte(key, 0) >= 0:
		reason = "contains a NUL byte"
	case strings.HasPrefix(key, "/"):
		reason = `must not begin with "/"`
	default:
		reason = segmentProblem(key)
	}
	if reason == "" {
		return nil
	}
	return fmt.Errorf("%w: key %s %s", resource.ErrInvalid, quoteKey(key), reason)
}

// segmentProblem says why a key cannot travel as a URL path unchanged, or "".
func segmentProblem(key string) string {
	segments := strings.Split(key, "/")
	for i, seg := range segments {
		switch {
		case seg == "." || seg == "..":
			return fmt.Sprintf("has a %q segment, which URL paths cannot carry", seg)
		case seg == "" && i > 0 && i < len(segments)-1:
			return `has an empty segment ("//"), which URL paths cannot carry`
		}
	}
	return ""
}

// quoteKey quotes a key for a message, shortened when it is long.
func quoteKey(key string) string {
	const max = 64
	if len(key) > max {
		return fmt.Sprintf("%q…", key[:max])
	}
	return fmt.Sprintf("%q", key)
}

// etcdError classifies a failed etcd operation: a request etcd or gRPC
// refuses as too large is ErrTooLarge; the rest as package store does
// (unreachable or timed out: ErrUnavailable).
func etcdError(op string, err error) error {
	if errors.Is(err, rpctypes.ErrRequestTooLarge) || errors.Is(err, rpctypes.ErrGRPCRequestTooLarge) ||
		status.Code(err) == codes.ResourceExhausted {
		return fmt.Errorf("%w: etcd refused the %s as too large: %v", resource.ErrTooLarge, op, err)
	}
	return store.EtcdError("kv "+op, err)
}

// Get reads one entry and the etcd revision it was read at. A missing key is
// ErrNotFound, still with the revision.
func (s *Store) Get(ctx context.Context, key string) (Entry, int64, error) {
	if err := ValidateKey(key); err != nil {
		return Entry{}, 0, err
	}
	resp, err := s.client.Get(ctx, valueKey(key))
	if err != nil {
		return Entry{}, 0, etcdError("get", err)
	}
	if len(resp.Kvs) == 0 {
		return Entry{}, resp.Header.Revision, notFound(key)
	}
	return entryOf(resp.Kvs[0]), resp.Header.Revision, nil
}

func notFound(key string) error {
	return fmt.Errorf("%w: key %s does not exist", resource.ErrNotFound, quoteKey(key))
}

// List reads the entries whose keys begin with prefix ("" for all), sorted by
// key, and the revision they were read at.
func (s *Store) List(ctx context.Context, prefix string) ([]Entry, int64, error) {
	if err := ValidatePrefix(prefix); err != nil {
		return nil, 0, err
	}
	resp, err := s.client.Get(ctx, valueKey(prefix), clientv3.WithPrefix())
	if err != nil {
		return nil, 0, etcdError("list", err)
	}
	entries := make([]Entry, len(resp.Kvs))
	for i, kv := range resp.Kvs {
		entries[i] = entryOf(kv)
	}
	return entries, resp.Header.Revision, nil
}

// Keys lists the keys that begin with prefix, sorted. With a separator, as
// Consul's ?keys&separator= does, a key with the separator after the prefix
// is cut after its first one ("prefix/dir/"), and each such key is listed
// once.
func (s *Store) Keys(ctx context.Context, prefix, separator string) ([]string, int64, error) {
	if err := ValidatePrefix(prefix); err != nil {
		return nil, 0, err
	}
	resp, err := s.client.Get(ctx, valueKey(prefix), clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, 0, etcdError("keys", err)
	}
	keys := make([]string, len(resp.Kvs))
	for i, kv := range resp.Kvs {
		keys[i] = strings.TrimPrefix(string(kv.Key), ValuePrefix)
	}
	return collapseKeys(keys, prefix, separator), resp.Header.Revision, nil
}

// collapseKeys cuts sorted keys, all beginning with prefix, after the first
// separator that follows the prefix, and drops the repeats that makes.
func collapseKeys(keys []string, prefix, separator string) []string {
	if separator == "" {
		return keys
	}
	out := keys[:0:0]
	for _, k := range keys {
		if i := strings.Index(k[len(prefix):], separator); i >= 0 {
			k = k[:len(prefix)+i+len(separator)]
		}
		if n := len(out); n == 0 || out[n-1] != k {
			out = append(out, k)
		}
	}
	return out
}

// PutOptions modify a put.
type PutOptions struct {
	Flags uint64
	// CAS makes the put conditional: nil writes unconditionally, 0 only
	// creates (the key must not exist), N > 0 writes only if the key's
	// ModifyIndex is still N.
	CAS *int64
}

// current is a key as one snapshot read it: its value (nil when it has
// none) and the etcd keys of its archived versions, oldest first.
type current struct {
	key     string
	kv      *mvccpb.KeyValue
	history []string
}

// readKey reads key's value and the keys of its archived versions at one
// revision.
func (s *Store) readKey(ctx context.Context, key string) (current, error) {
	resp, err := s.client.Txn(ctx).Then(
		clientv3.OpGet(valueKey(key)),
		clientv3.OpGet(historyStart(key), clientv3.WithPrefix(), clientv3.WithKeysOnly()),
	).Commit()
	if err != nil {
		return current{}, etcdError("read", err)
	}
	cur := current{key: key}
	if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
		cur.kv = kvs[0]
	}
	for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
		cur.history = append(cur.history, string(kv.Key))
	}
	return cur, nil
}

// guard is the compare a write of cur holds on: the key is still at the
// revision read, or still absent.
func (cur current) guard() clientv3.Cmp {
	if cur.kv == nil {
		return clientv3.Compare(clientv3.CreateRevision(valueKey(cur.key)), "=", 0)
	}
	return clientv3.Compare(clientv3.ModRevision(valueKey(cur.key)), "=", cur.kv.ModRevision)
}

// archiveOps copy cur's value into its history (marked deleted when a
// delete ends it) and drop the oldest archived versions beyond the limit.
// cur must have a value.
func (s *Store) archiveOps(cur current, deleted bool) []clientv3.Op {
	rec := decodeRecord(cur.kv.Value)
	rec.CreateIndex, rec.ModifyIndex, rec.Deleted = cur.kv.CreateRevision, cur.kv.ModRevision, deleted
	archived := archiveKey(cur.key, cur.kv.ModRevision)
	ops := []clientv3.Op{clientv3.OpPut(archived, encodeRecord(rec))}
	// The archived version is the newest: keep it and the limit-1 before it.
	all := append(cur.history[:len(cur.history):len(cur.history)], archived)
	if drop := len(all) - s.historyLimit; drop > 0 {
		ops = append(ops, clientv3.OpDelete(historyStart(cur.key), clientv3.WithRange(all[drop])))
	}
	return ops
}

// Put writes a value. CAS conflicts are ErrConflict (a create-only put on an
// existing key too), a CAS N > 0 on a missing key ErrNotFound, a value over
// the limit ErrTooLarge and a bad key ErrInvalid; the messages name the key
// and its current ModifyIndex.
func (s *Store) Put(ctx context.Context, key string, value []byte, opts PutOptions) (Entry, error) {
	if err := ValidateKey(key); err != nil {
		return Entry{}, err
	}
	if len(value) > s.maxValueSize {
		return Entry{}, fmt.Errorf("%w: the value of key %s is %d bytes, more than the limit of %d",
			resource.ErrTooLarge, quoteKey(key), len(value), s.maxValueSize)
	}
	if opts.CAS != nil && *opts.CAS < 0 {
		return Entry{}, fmt.Errorf("%w: cas %d is negative", resource.ErrBadRequest, *opts.CAS)
	}
	for attempt := 1; ; attempt++ {
		cur, err := s.readKey(ctx, key)
		if err != nil {
			return Entry{}, err
		}
		if err := checkCAS(cur, opts.CAS, "put"); err != nil {
			return Entry{}, err
		}
		now := s.now().UTC()
		var ops []clientv3.Op
		if cur.kv != nil {
			ops = s.archiveOps(cur, false)
		}
		ops = append(ops, clientv3.OpPut(valueKey(key), encodeRecord(record{Value: value, Flags: opts.Flags, Modified: now})))
		resp, err := s.client.Txn(ctx).If(cur.guard()).Then(ops...).Commit()
		if err != nil {
			return Entry{}, etcdError("put", err)
		}
		if resp.Succeeded {
			e := Entry{Key: key, Value: value, Flags: opts.Flags, CreateIndex: resp.Header.Revision, ModifyIndex: resp.Header.Revision, Modified: now}
			if cur.kv != nil {
				e.CreateIndex = cur.kv.CreateRevision
			}
			return e, nil
		}
		// Another writer came first. A conditional put reads again to say
		// why it fails (or, for a create, whether it still can); an
		// unconditional one tries again on the new value.
		if err := s.backoff(ctx, attempt, "put", key); err != nil {
			return Entry{}, err
		}
	}
}

// checkCAS says whether a write of op with cas may go ahead on cur.
func checkCAS(cur current, cas *int64, op string) error {
	switch {
	case cas == nil:
		return nil
	case *cas == 0 && cur.kv != nil:
		return fmt.Errorf("%w: %s with cas 0 only creates, and key %s exists at modifyIndex %d",
			resource.ErrConflict, op, quoteKey(cur.key), cur.kv.ModRevision)
	case *cas > 0 && cur.kv == nil:
		return fmt.Errorf("%w: key %s does not exist, so cas %d cannot match its modifyIndex",
			resource.ErrNotFound, quoteKey(cur.key), *cas)
	case *cas > 0 && cur.kv.ModRevision != *cas:
		return fmt.Errorf("%w: key %s is at modifyIndex %d, not %d (cas); read it again and retry",
			resource.ErrConflict, quoteKey(cur.key), cur.kv.ModRevision, *cas)
	}
	return nil
}

// backoff waits a little before attempt+1 of a write that lost a race, and
// fails once the attempts are used up.
func (s *Store) backoff(ctx context.Context, attempt int, op, key string) error {
	if attempt >= maxWriteAttempts {
		return fmt.Errorf("%w: %s of key %s lost the race with other writers %d times; retry",
			resource.ErrConflict, op, quoteKey(key), attempt)
	}
	if attempt < 3 {
		return nil
	}
	d := time.Duration(rand.Int64N(int64(attempt) * int64(time.Millisecond)))
	select {
	case <-ctx.Done():
		return etcdError(op, ctx.Err())
	case <-time.After(d):
		return nil
	}
}

// DeleteOptions modify a delete.
type DeleteOptions struct {
	// Recurse deletes every key that begins with the key given.
	Recurse bool
	// CAS deletes only if the key's ModifyIndex is still N (0: only if it
	// does not exist, which deletes nothing). Not with Recurse.
	CAS *int64
}

// deleteBatch bounds one transaction of a recursive delete: each key costs
// a compare and up to three operations, and etcd allows 128 of each.
const (
	deleteBatchKeys  = 32
	deleteBatchBytes = 1 << 20
)

// Delete deletes a key, or with Recurse every key under a prefix, archiving
// each value in its history. It returns how many keys it deleted and the
// revision of the (last) deletion. A missing single key is ErrNotFound; a
// recursive delete of nothing deletes 0.
func (s *Store) Delete(ctx context.Context, key string, opts DeleteOptions) (deleted int64, rev int64, err error) {
	if opts.Recurse {
		if opts.CAS != nil {
			return 0, 0, fmt.Errorf("%w: a recursive delete cannot take a cas", resource.ErrInvalid)
		}
		return s.deleteTree(ctx, key)
	}
	if err := ValidateKey(key); err != nil {
		return 0, 0, err
	}
	if opts.CAS != nil && *opts.CAS < 0 {
		return 0, 0, fmt.Errorf("%w: cas %d is negative", resource.ErrBadRequest, *opts.CAS)
	}
	for attempt := 1; ; attempt++ {
		cur, err := s.readKey(ctx, key)
		if err != nil {
			return 0, 0, err
		}
		if err := checkCAS(cur, opts.CAS, "delete"); err != nil {
			return 0, 0, err
		}
		if cur.kv == nil {
			return 0, 0, notFound(key)
		}
		ok, rev, err := s.commitDeletes(ctx, []current{cur})
		if err != nil || ok {
			return 1, rev, err
		}
		if err := s.backoff(ctx, attempt, "delete", key); err != nil {
			return 0, 0, err
		}
	}
}

// commitDeletes deletes the keys of batch, archiving each, if none changed
// since it was read.
func (s *Store) commitDeletes(ctx context.Context, batch []current) (bool, int64, error) {
	cmps := make([]clientv3.Cmp, 0, len(batch))
	var ops []clientv3.Op
	for _, cur := range batch {
		cmps = append(cmps, cur.guard())
		ops = append(ops, s.archiveOps(cur, true)...)
		ops = append(ops, clientv3.OpDelete(valueKey(cur.key)))
	}
	resp, err := s.client.Txn(ctx).If(cmps...).Then(ops...).Commit()
	if err != nil {
		return false, 0, etcdError("delete", err)
	}
	return resp.Succeeded, resp.Header.Revision, nil
}

// readTree reads, at one revision, the values under prefix and the keys of
// their archived versions; only keys in only (when not nil) are kept.
func (s *Store) readTree(ctx context.Context, prefix string, only map[string]bool) ([]current, int64, error) {
	resp, err := s.client.Txn(ctx).Then(
		clientv3.OpGet(valueKey(prefix), clientv3.WithPrefix()),
		clientv3.OpGet(HistoryPrefix+prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly()),
	).Commit()
	if err != nil {
		return nil, 0, etcdError("read", err)
	}
	history := map[string][]string{}
	for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
		owner := historyOwner(string(kv.Key))
		history[owner] = append(history[owner], string(kv.Key))
	}
	var curs []current
	for _, kv := range resp.Responses[0].GetResponseRange().Kvs {
		key := strings.TrimPrefix(string(kv.Key), ValuePrefix)
		if only == nil || only[key] {
			curs = append(curs, current{key: key, kv: kv, history: history[key]})
		}
	}
	return curs, resp.Header.Revision, nil
}

// deleteTree deletes the keys under prefix that exist when it starts, in
// batches; a batch that races a writer is read again and retried.
func (s *Store) deleteTree(ctx context.Context, prefix string) (int64, int64, error) {
	if err := ValidatePrefix(prefix); err != nil {
		return 0, 0, err
	}
	pending, rev, err := s.readTree(ctx, prefix, nil)
	if err != nil {
		return 0, 0, err
	}
	var deleted int64
	for attempt := 1; len(pending) > 0; {
		n, size := 0, 0
		for n < len(pending) && n < deleteBatchKeys && (n == 0 || size+len(pending[n].kv.Value) <= deleteBatchBytes) {
			size += len(pending[n].kv.Value)
			n++
		}
		ok, txnRev, err := s.commitDeletes(ctx, pending[:n])
		if err != nil {
			return deleted, rev, err
		}
		if ok {
			deleted += int64(n)
			rev = txnRev
			pending = pending[n:]
			attempt = 1
			continue
		}
		if err := s.backoff(ctx, attempt, "delete", prefix); err != nil {
			return deleted, rev, err
		}
		attempt++
		only := make(map[string]bool, len(pending))
		for _, cur := range pending {
			only[cur.key] = true
		}
		if pending, _, err = s.readTree(ctx, prefix, only); err != nil {
			return deleted, rev, err
		}
	}
	return deleted, rev, nil
}

// History returns the versions of a key, newest first: its current value
// when it has one, then the archived versions. A key with neither is
// ErrNotFound.
func (s *Store) History(ctx context.Context, key string) ([]Version, error) {
	versions, _, err := s.history(ctx, key)
	return versions, err
}

// history is History with the revision it read at.
func (s *Store) history(ctx context.Context, key string) ([]Version, int64, error) {
	if err := ValidateKey(key); err != nil {
		return nil, 0, err
	}
	resp, err := s.client.Txn(ctx).Then(
		clientv3.OpGet(valueKey(key)),
		clientv3.OpGet(historyStart(key), clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend)),
	).Commit()
	if err != nil {
		return nil, 0, etcdError("history", err)
	}
	rev := resp.Header.Revision
	var versions []Version
	for _, kv := range resp.Responses[0].GetResponseRange().Kvs {
		versions = append(versions, Version{Entry: entryOf(kv)})
	}
	for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
		versions = append(versions, versionOf(key, kv))
	}
	if len(versions) == 0 {
		return nil, rev, fmt.Errorf("%w: key %s has no value and no history", resource.ErrNotFound, quoteKey(key))
	}
	return versions, rev, nil
}

// Rollback writes the value and flags of the version of key at toIndex (see
// History) as a new version, with the cas of a put. A toIndex that is not
// in the history is ErrNotFound.
func (s *Store) Rollback(ctx context.Context, key string, toIndex int64, cas *int64) (Entry, error) {
	versions, err := s.History(ctx, key)
	if err != nil {
		return Entry{}, err
	}
	i := sort.Search(len(versions), func(i int) bool { return versions[i].ModifyIndex <= toIndex })
	if i == len(versions) || versions[i].ModifyIndex != toIndex {
		return Entry{}, fmt.Errorf("%w: key %s has no version at index %d; its history holds %s",
			resource.ErrNotFound, quoteKey(key), toIndex, indexes(versions))
	}
	v := versions[i]
	return s.Put(ctx, key, v.Value, PutOptions{Flags: v.Flags, CAS: cas})
}

// indexes lists the ModifyIndex of versions for a message.
func indexes(versions []Version) string {
	parts := make([]string, len(versions))
	for i, v := range versions {
		parts[i] = fmt.Sprint(v.ModifyIndex)
	}
	return strings.Join(parts, ", ")
}
