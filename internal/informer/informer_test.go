package informer_test

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/tools/cache"

	"github.com/sluice/sluice/internal/informer"
	"github.com/sluice/sluice/internal/resource"
	"github.com/sluice/sluice/internal/servertest"
)

// summary renders events per object as "type:seq" lists, sorted by key, so
// that expectations read like the script that produced them.
func summary(events []event) string {
	groups := byKey(events)
	keys := make([]string, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s:", k)
		for _, e := range groups[k] {
			fmt.Fprintf(&b, " %s:%s", e.Type, e.Seq)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// cacheState renders an informer's cache as sorted "key@resourceVersion".
func cacheState(inf *informer.Informer) []string {
	var out []string
	for _, o := range inf.List("") {
		out = append(out, o.GetNamespace()+"/"+o.GetName()+"@"+o.GetResourceVersion())
	}
	sort.Strings(out)
	return out
}

// storeState renders what the server or store holds in scope, the way
// cacheState does.
func storeState(t *testing.T, e *env, scope informer.Scope) []string {
	t.Helper()
	list, err := e.source(resource.ServiceKind, scope).ListWithContext(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, o := range list.(*resource.ServiceList).Items {
		out = append(out, o.Namespace+"/"+o.Name+"@"+o.ResourceVersion)
	}
	sort.Strings(out)
	return out
}

// waitConverged waits until inf caches exactly what the store holds in scope.
func waitConverged(t *testing.T, e *env, inf *informer.Informer, scope informer.Scope) {
	t.Helper()
	var got, want []string
	deadline := time.Now().Add(15 * time.Second)
	for {
		got, want = cacheState(inf), storeState(t, e, scope)
		if slices.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("cache did not converge within 15s:\n got  %v\n want %v", got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestInformerDeliversChangesWithinScope(t *testing.T) {
	web := map[string]string{"tier": "web"}
	db := map[string]string{"tier": "db"}
	for _, src := range sources {
		t.Run(src.name, func(t *testing.T) {
			e := src.env(t)
			e.apply(t, service("default", "web1", 1, web))
			e.apply(t, service("default", "db1", 1, db))
			e.apply(t, service("other", "web2", 1, web))

			scopes := []struct {
				name  string
				scope informer.Scope
				want  string
			}{
				{"all namespaces", informer.Scope{}, "" +
					"default/db1: add:1 update:2\n" +
					"default/web1: add:1 update:2 update:3\n" +
					"default/web3: add:1\n" +
					"other/web2: add:1 delete:1\n"},
				{"one namespace", informer.Scope{Namespace: "default"}, "" +
					"default/db1: add:1 update:2\n" +
					"default/web1: add:1 update:2 update:3\n" +
					"default/web3: add:1\n"},
				// Objects enter and leave a selector's scope by label changes.
				{"label selector", informer.Scope{Selector: labels.SelectorFromSet(web)}, "" +
					"default/db1: add:2\n" +
					"default/web1: add:1 update:2 delete:3\n" +
					"default/web3: add:1\n" +
					"other/web2: add:1 delete:1\n"},
			}
			infs := make([]*informer.Informer, len(scopes))
			recs := make([]*recorder, len(scopes))
			for i, sc := range scopes {
				infs[i] = informer.New(e.source(resource.ServiceKind, sc.scope), informer.Options{
					Logger: servertest.Logger(),
					Indexers: cache.Indexers{"tier": func(obj any) ([]string, error) {
						return []string{obj.(resource.Object).GetLabels()["tier"]}, nil
					}},
				})
				recs[i] = &recorder{}
				if _, err := infs[i].AddEventHandler(recs[i]); err != nil {
					t.Fatal(err)
				}
				run(t, infs[i])
			}

			e.apply(t, service("default", "web1", 2, web))
			e.apply(t, service("default", "web3", 1, web))
			e.apply(t, service("default", "db1", 2, web)) // into the selector
			e.apply(t, service("default", "web1", 3, db)) // out of the selector
			e.delete(t, "other", "web2")

			for i, sc := range scopes {
				t.Run(sc.name, func(t *testing.T) {
					waitConverged(t, e, infs[i], sc.scope)
					// Each line of want is "key:" and then one "type:seq" per event.
					n := strings.Count(sc.want, ":") - strings.Count(sc.want, "\n")
					waitFor(t, "every event", 10*time.Second, func() bool { return recs[i].len() >= n })
					if got := summary(recs[i].all()); got != sc.want {
						t.Errorf("handler saw\n%s\nwant\n%s", got, sc.want)
					}
				})
			}

			all, ns := infs[0], infs[1]
			got, ok := all.Get("default/web1")
			if !ok || got.GetLabels()["seq"] != "3" {
				t.Errorf("Get(default/web1) = %v, %v; want seq 3", got, ok)
			}
			if _, ok := all.Get("other/web2"); ok {
				t.Error("Get(other/web2) found a deleted object")
			}
			if n := len(ns.List("other")); n != 0 {
				t.Errorf("namespace-scoped informer lists %d objects in namespace other, want 0", n)
			}
			if n := len(all.List("default")); n != 3 {
				t.Errorf("List(default) has %d objects, want 3", n)
			}
			webs, err := all.Indexer().ByIndex("tier", "web")
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, o := range webs {
				names = append(names, o.(resource.Object).GetName())
			}
			sort.Strings(names)
			if !slices.Equal(names, []string{"db1", "web3"}) {
				t.Errorf("tier=web index = %v, want [db1 web3]", names)
			}
		})
	}
}

// A dropped watch must resume from the last resourceVersion: every change
// reaches the handler exactly once and in order, including changes made
// while the watch was down, and nothing is listed again.
func TestInformerResumesAfterDroppedWatch(t *testing.T) {
	cases := []struct {
		name string
		env  func(*testing.T) *env
		// disrupt breaks the informer's watch, calls during while it is
		// broken, then lets it come back.
		disrupt func(t *testing.T, e *env, p *probe, during func())
	}{
		// Changes while the server is down reach etcd through the store.
		{"rest server restart", newRESTEnv, func(t *testing.T, e *env, _ *probe, during func()) {
			if err := e.server.Stop(); err != nil {
				t.Fatal(err)
			}
			during()
			e.server.Restart(t)
		}},
		// etcd restarts with the server; changes right after the restart
		// race the informer's watch, which is still backing off.
		{"rest server and etcd restart", newEmbeddedEnv, func(t *testing.T, e *env, _ *probe, during func()) {
			e.server.Restart(t)
			during()
		}},
		{"store stream dropped", newStoreEnv, func(t *testing.T, _ *env, p *probe, during func()) {
			watches := p.watches.Load()
			p.hold()
			p.drop()
			waitFor(t, "the informer to watch again", 10*time.Second, func() bool { return p.watches.Load() > watches })
			during()
			p.release()
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := tc.env(t)
			// want is every change, as the store answered each write.
			var want []event
			exists := map[string]bool{}
			apply := func(name string, seq int) {
				o := e.apply(t, service("default", name, seq, nil))
				typ := "add"
				if exists[name] {
					typ = "update"
				}
				exists[name] = true
				want = append(want, event{typ, "default/" + name, o.GetResourceVersion(), fmt.Sprint(seq)})
			}
			del := func(name string) {
				o := e.delete(t, "default", name)
				exists[name] = false
				want = append(want, event{"delete", "default/" + name, o.GetResourceVersion(), o.GetLabels()["seq"]})
			}

			apply("a", 1)
			apply("b", 1)
			p := &probe{Source: e.source(resource.ServiceKind, informer.Scope{Namespace: "default"})}
			inf := informer.New(p, informer.Options{Logger: servertest.Logger()})
			rec := &recorder{}
			if _, err := inf.AddEventHandler(rec); err != nil {
				t.Fatal(err)
			}
			run(t, inf)
			seen := func() {
				waitFor(t, fmt.Sprintf("%d events", len(want)), 20*time.Second, func() bool { return rec.len() >= len(want) })
			}

			apply("a", 2)
			apply("c", 1)
			apply("b", 2)
			seen()
			tc.disrupt(t, e, p, func() {}) // between changes
			apply("a", 3)
			del("b")
			apply("c", 2)
			seen()
			tc.disrupt(t, e, p, func() { // during changes
				apply("a", 4)
				apply("b", 3)
				del("c")
				apply("d", 1)
			})
			apply("d", 2)
			apply("a", 5)
			seen()

			got := rec.all()
			if len(got) != len(want) {
				t.Errorf("handler saw %d changes, want %d:\n%s\nwant\n%s", len(got), len(want), summary(got), summary(want))
			}
			for key, evs := range byKey(want) {
				if gotEvs := byKey(got)[key]; !slices.Equal(gotEvs, evs) {
					t.Errorf("%s: handler saw %v, want %v", key, gotEvs, evs)
				}
			}
			if n := p.lists.Load(); n != 1 {
				t.Errorf("%d lists, want 1: a dropped watch must resume, not relist", n)
			}
			if sts := p.errorStatuses(); len(sts) != 0 {
				t.Errorf("watch ERROR statuses %+v, want none", sts)
			}
			if n := p.watches.Load(); n < 3 {
				t.Errorf("%d watches, want at least 3 (one per disruption)", n)
			}
			for _, opts := range p.watchOptions() {
				if opts.ResourceVersion == "" || opts.ResourceVersion == "0" || opts.SendInitialEvents != nil {
					t.Errorf("watch options %+v: want a plain watch from a resourceVersion", opts)
				}
			}
			waitConverged(t, e, inf, informer.Scope{Namespace: "default"})
		})
	}
}

// A watch that falls behind a compaction gets 410 Expired; the informer
// lists again and converges on the true state.
func TestInformerRelistsAfterCompaction(t *testing.T) {
	for _, src := range sources {
		t.Run(src.name, func(t *testing.T) {
			e := src.env(t)
			e.apply(t, service("default", "a", 1, nil))
			e.apply(t, service("default", "b", 1, nil))
			e.apply(t, service("default", "c", 1, nil))
			p := &probe{Source: e.source(resource.ServiceKind, informer.Scope{})}
			inf := informer.New(p, informer.Options{Logger: servertest.Logger()})
			rec := &recorder{}
			if _, err := inf.AddEventHandler(rec); err != nil {
				t.Fatal(err)
			}
			run(t, inf)
			// An event on the watch, so that dropping it is not mistaken for
			// a watch that never worked (which client-go answers by relisting).
			e.apply(t, service("default", "a", 2, nil))
			waitFor(t, "the update of a", 10*time.Second, func() bool { return rec.len() == 4 })

			watches := p.watches.Load()
			p.hold()
			p.drop()
			waitFor(t, "the informer to watch again", 10*time.Second, func() bool { return p.watches.Load() > watches })
			e.apply(t, service("default", "b", 2, nil))
			e.delete(t, "default", "c")
			e.apply(t, service("default", "d", 1, nil))
			e.compact(t)
			p.release()

			waitFor(t, "a relist", 15*time.Second, func() bool { return p.lists.Load() == 2 })
			waitConverged(t, e, inf, informer.Scope{})
			if sts := p.errorStatuses(); len(sts) != 1 || sts[0].Code != 410 || sts[0].Reason != metav1.StatusReasonExpired {
				t.Errorf("watch ERROR statuses %+v, want one 410 Expired", sts)
			}
			waitFor(t, "every event", 10*time.Second, func() bool { return rec.len() >= 7 })
			if got, want := summary(rec.all()), ""+
				"default/a: add:1 update:2\n"+
				"default/b: add:1 update:2\n"+
				"default/c: add:1 delete:1\n"+
				"default/d: add:1\n"; got != want {
				t.Errorf("handler saw\n%s\nwant\n%s", got, want)
			}
		})
	}
}
