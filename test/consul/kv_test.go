package consule2e

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/sluice/sluice/internal/kv"
	"github.com/sluice/sluice/internal/server"
)

func TestKV(t *testing.T) {
	s := start(t, server.Config{}, "")
	c := s.consul.KV()

	// Put, get, flags.
	if _, err := c.Put(&api.KVPair{Key: "app/db/url", Value: []byte("postgres://db"), Flags: 42}, nil); err != nil {
		t.Fatal(err)
	}
	pair, meta, err := c.Get("app/db/url", nil)
	if err != nil || pair == nil {
		t.Fatalf("get: %v %v", pair, err)
	}
	if string(pair.Value) != "postgres://db" || pair.Flags != 42 || pair.ModifyIndex == 0 || pair.CreateIndex != pair.ModifyIndex {
		t.Errorf("get = %+v", pair)
	}
	if meta.LastIndex == 0 || !meta.KnownLeader {
		t.Errorf("query meta = %+v, want an index and a known leader", meta)
	}

	// A missing key is nil, not an error.
	if p, _, err := c.Get("app/nope", nil); err != nil || p != nil {
		t.Errorf("get of a missing key = %v, %v; want nil, nil", p, err)
	}

	// Recurse and keys with a separator.
	for _, k := range []string{"app/db/user", "app/cache/ttl", "app/name", "other/x"} {
		if _, err := c.Put(&api.KVPair{Key: k, Value: []byte(k)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	pairs, _, err := c.List("app/", nil)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, p := range pairs {
		keys = append(keys, p.Key)
	}
	if want := []string{"app/cache/ttl", "app/db/url", "app/db/user", "app/name"}; !slices.Equal(keys, want) {
		t.Errorf("list app/ = %v, want %v", keys, want)
	}
	if got, _, err := c.Keys("app/", "/", nil); err != nil || !slices.Equal(got, []string{"app/cache/", "app/db/", "app/name"}) {
		t.Errorf("keys app/ separator / = %v, %v", got, err)
	}
	if got, _, err := c.Keys("", "/", nil); err != nil || !slices.Equal(got, []string{"app/", "other/"}) {
		t.Errorf("keys of the root = %v, %v", got, err)
	}
	if got, _, err := c.List("none/", nil); err != nil || len(got) != 0 {
		t.Errorf("list of an empty prefix = %v, %v; want nothing", got, err)
	}

	// CAS: success with the current index, false with a stale one, create-only.
	ok, _, err := c.CAS(&api.KVPair{Key: "app/db/url", Value: []byte("v2"), ModifyIndex: pair.ModifyIndex}, nil)
	if err != nil || !ok {
		t.Fatalf("cas with the current index = %v, %v; want true", ok, err)
	}
	ok, _, err = c.CAS(&api.KVPair{Key: "app/db/url", Value: []byte("v3"), ModifyIndex: pair.ModifyIndex}, nil)
	if err != nil || ok {
		t.Errorf("cas with a stale index = %v, %v; want false", ok, err)
	}
	ok, _, err = c.CAS(&api.KVPair{Key: "app/new", Value: []byte("1"), ModifyIndex: 0}, nil)
	if err != nil || !ok {
		t.Errorf("cas 0 on a new key = %v, %v; want true (create)", ok, err)
	}
	ok, _, err = c.CAS(&api.KVPair{Key: "app/new", Value: []byte("2"), ModifyIndex: 0}, nil)
	if err != nil || ok {
		t.Errorf("cas 0 on an existing key = %v, %v; want false", ok, err)
	}
	ok, _, err = c.CAS(&api.KVPair{Key: "app/missing", Value: []byte("1"), ModifyIndex: 7}, nil)
	if err != nil || ok {
		t.Errorf("cas 7 on a missing key = %v, %v; want false", ok, err)
	}
	if p, _, _ := c.Get("app/db/url", nil); p == nil || string(p.Value) != "v2" {
		t.Errorf("after the CAS round: %+v, want v2", p)
	}

	// The native API sees the same data, with the same indexes.
	native := s.srv.Client(t, "")
	e, err := native.KVGet(context.Background(), "app/db/url")
	if err != nil || string(e.Value) != "v2" {
		t.Fatalf("native get = %+v, %v", e, err)
	}
	p, _, _ := c.Get("app/db/url", nil)
	if uint64(e.ModifyIndex) != p.ModifyIndex {
		t.Errorf("native modifyIndex %d, consul %d", e.ModifyIndex, p.ModifyIndex)
	}
	if _, err := native.KVPut(context.Background(), "app/from-native", []byte("hi"), kv.PutOptions{Flags: 3}); err != nil {
		t.Fatal(err)
	}
	if p, _, _ := c.Get("app/from-native", nil); p == nil || string(p.Value) != "hi" || p.Flags != 3 {
		t.Errorf("consul get of a native put = %+v", p)
	}

	// Delete, CAS delete, recursive delete.
	p, _, _ = c.Get("app/name", nil)
	if ok, _, err := c.DeleteCAS(&api.KVPair{Key: "app/name", ModifyIndex: p.ModifyIndex + 1000}, nil); err != nil || ok {
		t.Errorf("delete-cas with a stale index = %v, %v; want false", ok, err)
	}
	if ok, _, err := c.DeleteCAS(&api.KVPair{Key: "app/name", ModifyIndex: p.ModifyIndex}, nil); err != nil || !ok {
		t.Errorf("delete-cas with the current index = %v, %v; want true", ok, err)
	}
	if _, err := c.Delete("app/cache/ttl", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Delete("app/never-was", nil); err != nil {
		t.Errorf("delete of a missing key: %v, want success as Consul", err)
	}
	if _, err := c.DeleteTree("app/db/", nil); err != nil {
		t.Fatal(err)
	}
	keys, _, _ = c.Keys("app/", "", nil)
	if want := []string{"app/from-native", "app/new"}; !slices.Equal(keys, want) {
		t.Errorf("keys after the deletes = %v, want %v", keys, want)
	}
	// A deleted key's history is still there natively, so it can be rolled back.
	if h, err := native.KVHistory(context.Background(), "app/name"); err != nil || len(h.Versions) == 0 {
		t.Errorf("native history of a key deleted through Consul = %+v, %v", h, err)
	}
}

func TestKVBadInput(t *testing.T) {
	s := start(t, server.Config{}, "")
	c := s.consul.KV()
	big := make([]byte, 512<<10+1)
	_, err := c.Put(&api.KVPair{Key: "big", Value: big}, nil)
	if err == nil || !strings.Contains(err.Error(), "413") || !strings.Contains(err.Error(), "too large, max size: 524288 bytes") {
		t.Errorf("put of 512 KiB + 1: %v, want Consul's 413", err)
	}
	if _, err := c.Put(&api.KVPair{Key: "ok", Value: big[:512<<10]}, nil); err != nil {
		t.Errorf("put of exactly 512 KiB: %v", err)
	}
	var se api.StatusError
	_, _, err = c.Acquire(&api.KVPair{Key: "lock", Value: []byte("x"), Session: "abc"}, nil)
	if !errors.As(err, &se) || se.Code != 400 || !strings.Contains(se.Body, "does not support sessions") {
		t.Errorf("acquire: %v, want 400 saying sessions are not supported", err)
	}
	_, err = c.Put(&api.KVPair{Key: "", Value: []byte("x")}, nil)
	if !errors.As(err, &se) || se.Code != 400 || !strings.Contains(se.Body, "Missing key name") {
		t.Errorf("put without a key: %v, want 400 Missing key name", err)
	}
}

// TestKVBlockingQuery: a blocking get returns within 100 ms of a change to
// its key, ignores changes elsewhere, and otherwise returns at its wait.
func TestKVBlockingQuery(t *testing.T) {
	s := start(t, server.Config{}, "")
	c := s.consul.KV()
	if _, err := c.Put(&api.KVPair{Key: "cfg/feature", Value: []byte("off")}, nil); err != nil {
		t.Fatal(err)
	}
	_, meta, err := c.Get("cfg/feature", nil)
	if err != nil {
		t.Fatal(err)
	}

	// Nothing changes (but another key): it returns at its wait, same index.
	if _, err := c.Put(&api.KVPair{Key: "cfg/other", Value: []byte("x")}, nil); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, m2, err := c.Get("cfg/feature", &api.QueryOptions{WaitIndex: meta.LastIndex, WaitTime: 500 * time.Millisecond})
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if took < 450*time.Millisecond || took > 2*time.Second || m2.LastIndex != meta.LastIndex {
		t.Errorf("blocking get without a change: returned after %s with index %d; want about 500ms and index %d", took, m2.LastIndex, meta.LastIndex)
	}

	// A change wakes it.
	type result struct {
		pair *api.KVPair
		meta *api.QueryMeta
		at   time.Time
		err  error
	}
	done := make(chan result, 1)
	go func() {
		p, m, err := c.Get("cfg/feature", &api.QueryOptions{WaitIndex: meta.LastIndex, WaitTime: time.Minute})
		done <- result{p, m, time.Now(), err}
	}()
	time.Sleep(300 * time.Millisecond)
	changed := time.Now()
	if _, err := c.Put(&api.KVPair{Key: "cfg/feature", Value: []byte("on")}, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		if r.err != nil || r.pair == nil || string(r.pair.Value) != "on" || r.meta.LastIndex <= meta.LastIndex {
			t.Fatalf("woken get = %+v %+v %v", r.pair, r.meta, r.err)
		}
		wake := r.at.Sub(changed)
		t.Logf("blocking KV get returned %s after the put", wake.Round(time.Millisecond))
		if wake > time.Second {
			t.Errorf("woken %s after the change, want within 100ms (1s allowed for a loaded machine)", wake)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("blocking get not woken by a change of its key")
	}

	// A recursive blocking list wakes on a delete under its prefix.
	_, lm, _ := c.List("cfg/", nil)
	go func() {
		p, m, err := c.List("cfg/", &api.QueryOptions{WaitIndex: lm.LastIndex, WaitTime: time.Minute})
		done <- result{meta: m, at: time.Now(), err: err, pair: &api.KVPair{Key: strings.Repeat("x", len(p))}}
	}()
	time.Sleep(200 * time.Millisecond)
	if _, err := c.Delete("cfg/other", nil); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		if r.err != nil || len(r.pair.Key) != 1 || r.meta.LastIndex <= lm.LastIndex {
			t.Errorf("woken list: %d entries, index %d (was %d), %v; want 1 entry and a newer index", len(r.pair.Key), r.meta.LastIndex, lm.LastIndex, r.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("blocking list not woken by a delete under its prefix")
	}
}
