package consule2e

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/sluice/sluice/internal/server"
)

// maxWake bounds how long after a change a blocking query returns. The
// target is 100 ms; the bound leaves room for a loaded machine, and the
// test logs the figure.
const maxWake = time.Second

// TestBlockingQueries: a health query with ?index= returns soon after a
// change to its service, waits out its wait time when nothing changes (or
// only another service does) and then answers with the same index.
func TestBlockingQueries(t *testing.T) {
	t.Parallel()
	s := start(t, server.Config{}, "")
	agent, healthAPI := s.consul.Agent(), s.consul.Health()
	register := func(id, name string) {
		t.Helper()
		if err := agent.ServiceRegister(&api.AgentServiceRegistration{ID: id, Name: name, Address: "127.0.0.1", Port: 9000}); err != nil {
			t.Fatal(err)
		}
	}
	register("blk-1", "blk")
	_, meta, err := healthAPI.Service("blk", "", false, nil)
	if err != nil {
		t.Fatal(err)
	}
	index := meta.LastIndex

	// A change wakes the query.
	type result struct {
		ids   []string
		index uint64
		at    time.Time
		err   error
	}
	block := func(index uint64, wait time.Duration) <-chan result {
		out := make(chan result, 1)
		go func() {
			entries, meta, err := healthAPI.Service("blk", "", false, &api.QueryOptions{WaitIndex: index, WaitTime: wait})
			r := result{at: time.Now(), err: err}
			if err == nil {
				r.index = meta.LastIndex
				for _, e := range entries {
					r.ids = append(r.ids, e.Service.ID)
				}
				slices.Sort(r.ids)
			}
			out <- r
		}()
		return out
	}
	woken := block(index, 30*time.Second)
	select {
	case r := <-woken:
		t.Fatalf("a query at the current index returned at once: %+v", r)
	case <-time.After(300 * time.Millisecond):
	}
	changed := time.Now()
	register("blk-2", "blk")
	acked := time.Now()
	r := <-woken
	if r.err != nil {
		t.Fatal(r.err)
	}
	wake := r.at.Sub(changed)
	t.Logf("blocking query returned %v after the registration began (the registration took %v)", wake.Round(time.Microsecond), acked.Sub(changed).Round(time.Microsecond))
	if wake > maxWake {
		t.Errorf("the blocking query returned %v after the change, want < %v", wake, maxWake)
	}
	if !slices.Equal(r.ids, []string{"blk-1", "blk-2"}) || r.index <= index {
		t.Errorf("woken query: instances %q at index %d, want blk-1 and blk-2 at an index above %d", r.ids, r.index, index)
	}
	index = r.index

	// Nothing changes: the query waits its wait time and answers the same index.
	const wait = 500 * time.Millisecond
	begin := time.Now()
	r = <-block(index, wait)
	took := r.at.Sub(begin)
	t.Logf("with no change the query returned after %v (wait %v)", took.Round(time.Millisecond), wait)
	if r.err != nil || took < wait || took > wait+wait/16+500*time.Millisecond || r.index != index {
		t.Errorf("query with no change: returned after %v at index %d (err %v), want after %v (+ up to 1/16 jitter) at index %d", took, r.index, r.err, wait, index)
	}

	// Another service changing does not wake it.
	pending := block(index, wait)
	time.Sleep(100 * time.Millisecond) // let it block first
	register("other-1", "other")
	r = <-pending
	if r.err != nil || r.index != index || r.at.Sub(begin) < wait {
		t.Errorf("query on blk while other changed: index %d (err %v), want the same index %d after the wait", r.index, r.err, index)
	}

	// A health change (a TTL check passing) wakes it too.
	if err := agent.ServiceRegister(&api.AgentServiceRegistration{ID: "blk-1", Name: "blk", Address: "127.0.0.1", Port: 9000,
		Check: &api.AgentServiceCheck{TTL: "30s"}}); err != nil {
		t.Fatal(err)
	}
	_, meta, err = healthAPI.Service("blk", "", true, nil)
	if err != nil {
		t.Fatal(err)
	}
	pending = block(meta.LastIndex, 30*time.Second)
	changed = time.Now()
	if err := agent.PassTTL("service:blk-1", ""); err != nil {
		t.Fatal(err)
	}
	r = <-pending
	t.Logf("blocking query returned %v after a heartbeat changed a check's state", r.at.Sub(changed).Round(time.Microsecond))
	if r.err != nil || r.at.Sub(changed) > maxWake {
		t.Errorf("query woken by a check passing: %v after the heartbeat (err %v), want < %v", r.at.Sub(changed), r.err, maxWake)
	}
}

// TestManyBlockingQueries: a few hundred blocking queries on one service
// all return soon after one change.
func TestManyBlockingQueries(t *testing.T) {
	t.Parallel()
	s := start(t, server.Config{}, "")
	agent := s.consul.Agent()
	if err := agent.ServiceRegister(&api.AgentServiceRegistration{ID: "fan-1", Name: "fan", Address: "127.0.0.1", Port: 9000}); err != nil {
		t.Fatal(err)
	}
	_, meta, err := s.consul.Health().Service("fan", "", false, nil)
	if err != nil {
		t.Fatal(err)
	}
	const n = 300
	var wg sync.WaitGroup
	var mu sync.Mutex
	var last time.Time
	var errs []error
	started := make(chan struct{}, n)
	for range n {
		wg.Go(func() {
			started <- struct{}{}
			entries, m, err := s.consul.Health().Service("fan", "", false, &api.QueryOptions{WaitIndex: meta.LastIndex, WaitTime: 30 * time.Second})
			mu.Lock()
			defer mu.Unlock()
			if now := time.Now(); now.After(last) {
				last = now
			}
			if err == nil && (len(entries) != 2 || m.LastIndex <= meta.LastIndex) {
				err = fmt.Errorf("%d instances at index %d", len(entries), m.LastIndex)
			}
			if err != nil {
				errs = append(errs, err)
			}
		})
	}
	for range n {
		<-started
	}
	time.Sleep(500 * time.Millisecond) // let them all block
	changed := time.Now()
	if err := agent.ServiceRegister(&api.AgentServiceRegistration{ID: "fan-2", Name: "fan", Address: "127.0.0.1", Port: 9000}); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	all := last.Sub(changed)
	t.Logf("%d blocking queries all returned %v after one registration", n, all.Round(time.Millisecond))
	if len(errs) > 0 {
		t.Errorf("%d of %d queries failed, first: %v", len(errs), n, errs[0])
	}
	if all > 3*time.Second {
		t.Errorf("the last of %d queries returned %v after the change, want < 3s", n, all)
	}
}

// TestShutdownEndsBlockingQueries: a server stopping answers its blocking
// queries at once instead of waiting for them.
func TestShutdownEndsBlockingQueries(t *testing.T) {
	t.Parallel()
	s := start(t, server.Config{}, "")
	_, meta, err := s.consul.Catalog().Services(nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, _, err := s.consul.Catalog().Services(&api.QueryOptions{WaitIndex: meta.LastIndex, WaitTime: time.Minute})
		done <- err
	}()
	time.Sleep(200 * time.Millisecond) // let it block
	begin := time.Now()
	if err := s.srv.Stop(); err != nil {
		t.Fatal(err)
	}
	took := time.Since(begin)
	t.Logf("the server stopped in %v with a blocking query open", took.Round(time.Millisecond))
	if took > 5*time.Second {
		t.Errorf("stopping took %v with a blocking query open, want it answered at once", took)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("the blocking query failed instead of being answered: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the blocking query did not return after the server stopped")
	}
}
