package informer_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"

	"github.com/sluice/sluice/internal/informer"
	"github.com/sluice/sluice/internal/resource"
)

func atoi(t *testing.T, s string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatalf("resourceVersion %q: %v", s, err)
	}
	return n
}

// next returns the next event that is not a BOOKMARK.
func next(t *testing.T, w watch.Interface) watch.Event {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				t.Fatal("watch closed, want an event")
			}
			if ev.Type != watch.Bookmark {
				return ev
			}
		case <-timeout:
			t.Fatal("no watch event within 10s")
		}
	}
}

func TestSourceListAndWatch(t *testing.T) {
	for _, src := range sources {
		t.Run(src.name, func(t *testing.T) {
			e := src.env(t)
			ctx := context.Background()
			e.apply(t, service("default", "web", 1, map[string]string{"tier": "web"}))
			e.apply(t, service("default", "db", 1, map[string]string{"tier": "db"}))
			e.apply(t, service("other", "web", 1, map[string]string{"tier": "web"}))
			s := e.source(resource.ServiceKind, informer.Scope{Namespace: "default", Selector: labels.SelectorFromSet(labels.Set{"tier": "web"})})

			obj, err := s.ListWithContext(ctx, metav1.ListOptions{})
			if err != nil {
				t.Fatal(err)
			}
			list, ok := obj.(*resource.ServiceList)
			if !ok {
				t.Fatalf("List returned %T, want *resource.ServiceList", obj)
			}
			rev, err := e.store.Revision(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if list.ResourceVersion != strconv.FormatInt(rev, 10) {
				t.Errorf("list resourceVersion = %q, want the store revision %d", list.ResourceVersion, rev)
			}
			if len(list.Items) != 1 || list.Items[0].Namespace != "default" || list.Items[0].Name != "web" {
				t.Errorf("list = %+v, want only default/web", list.Items)
			}

			w, err := s.WatchWithContext(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion, AllowWatchBookmarks: true})
			if err != nil {
				t.Fatal(err)
			}
			defer w.Stop()
			want := e.apply(t, service("default", "web", 2, map[string]string{"tier": "web"}))
			ev := next(t, w)
			svc, ok := ev.Object.(*resource.Service)
			if ev.Type != watch.Modified || !ok || svc.ResourceVersion != want.GetResourceVersion() || svc.Labels["seq"] != "2" {
				t.Fatalf("event = %s %#v, want MODIFIED of a *resource.Service at resourceVersion %s", ev.Type, ev.Object, want.GetResourceVersion())
			}
			// Out of scope: another namespace, another label.
			e.apply(t, service("other", "web", 2, map[string]string{"tier": "web"}))
			e.apply(t, service("default", "db", 2, map[string]string{"tier": "db"}))
			// Into scope by a label change: ADDED.
			want = e.apply(t, service("default", "db", 3, map[string]string{"tier": "web"}))
			if ev := next(t, w); ev.Type != watch.Added || ev.Object.(*resource.Service).ResourceVersion != want.GetResourceVersion() {
				t.Fatalf("event = %s %#v, want ADDED of default/db at %s", ev.Type, ev.Object, want.GetResourceVersion())
			}
			want = e.delete(t, "default", "web")
			if ev := next(t, w); ev.Type != watch.Deleted || ev.Object.(*resource.Service).ResourceVersion != want.GetResourceVersion() {
				t.Fatalf("event = %s %#v, want DELETED of default/web at %s", ev.Type, ev.Object, want.GetResourceVersion())
			}

			w.Stop()
			for range w.ResultChan() {
			}
		})
	}
}

func TestSourceBookmarksCarryOnlyAResourceVersion(t *testing.T) {
	for _, src := range sources {
		t.Run(src.name, func(t *testing.T) {
			e := src.env(t)
			s := e.source(resource.ServiceKind, informer.Scope{})
			list, err := s.ListWithContext(context.Background(), metav1.ListOptions{})
			if err != nil {
				t.Fatal(err)
			}
			rv := list.(*resource.ServiceList).ResourceVersion
			w, err := s.WatchWithContext(context.Background(), metav1.ListOptions{ResourceVersion: rv, AllowWatchBookmarks: true})
			if err != nil {
				t.Fatal(err)
			}
			defer w.Stop()
			// etcd reports progress only past the revision a watch started
			// at: move the revision with a write the watch does not see.
			ep := &resource.Endpoint{
				ObjectMeta: metav1.ObjectMeta{Name: "ep", Namespace: "default"},
				Spec:       resource.EndpointSpec{Address: "10.0.0.1", Ports: []resource.EndpointPort{{Port: 8080}}},
			}
			ep.GetObjectKind().SetGroupVersionKind(resource.EndpointKind.GVK())
			written := e.apply(t, ep)
			select {
			case ev := <-w.ResultChan():
				bm, ok := ev.Object.(*resource.Service)
				if ev.Type != watch.Bookmark || !ok || bm.Name != "" {
					t.Fatalf("event = %s %#v, want a BOOKMARK *resource.Service with only a resourceVersion", ev.Type, ev.Object)
				}
				if got, want := bm.ResourceVersion, written.GetResourceVersion(); atoi(t, got) < atoi(t, want) {
					t.Errorf("bookmark resourceVersion = %s, want at least %s", got, want)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("no BOOKMARK within 10s")
			}
		})
	}
}

func TestSourceExpiredResourceVersionIs410(t *testing.T) {
	for _, src := range sources {
		t.Run(src.name, func(t *testing.T) {
			e := src.env(t)
			// The watch starts before the compacted revision (at it, etcd
			// would still answer).
			first := e.apply(t, service("default", "web", 1, nil))
			e.apply(t, service("default", "web", 2, nil))
			e.apply(t, service("default", "web", 3, nil))
			e.compact(t)
			s := e.source(resource.ServiceKind, informer.Scope{})
			w, err := s.WatchWithContext(context.Background(), metav1.ListOptions{ResourceVersion: first.GetResourceVersion()})
			if err != nil {
				t.Fatal(err)
			}
			defer w.Stop()
			ev := next(t, w)
			st, ok := ev.Object.(*metav1.Status)
			if ev.Type != watch.Error || !ok {
				t.Fatalf("event = %s %#v, want ERROR with a *metav1.Status", ev.Type, ev.Object)
			}
			if st.Code != 410 || st.Reason != metav1.StatusReasonExpired {
				t.Errorf("status = %d %s, want 410 %s", st.Code, st.Reason, metav1.StatusReasonExpired)
			}
			if err := apierrors.FromObject(st); !apierrors.IsResourceExpired(err) {
				t.Errorf("client-go does not see %v as expired", err)
			}
			if ev, ok := <-w.ResultChan(); ok {
				t.Errorf("after ERROR got %s, want the channel closed", ev.Type)
			}
		})
	}
}

func TestSourceRefusesWatchList(t *testing.T) {
	for _, src := range sources {
		t.Run(src.name, func(t *testing.T) {
			s := src.env(t).source(resource.ServiceKind, informer.Scope{})
			if !s.IsWatchListSemanticsUnSupported() {
				t.Error("IsWatchListSemanticsUnSupported() = false, want true")
			}
			w, err := s.WatchWithContext(context.Background(), metav1.ListOptions{SendInitialEvents: ptr.To(true), AllowWatchBookmarks: true})
			if err == nil {
				w.Stop()
				t.Fatal("a WatchList request (sendInitialEvents) succeeded, want an error")
			}
		})
	}
}

// A watch that cannot reach the server must look like "connection refused"
// to client-go, which then retries the watch instead of relisting.
func TestRESTSourceUnreachableServerIsConnectionRefused(t *testing.T) {
	e := newRESTEnv(t)
	s := e.source(resource.ServiceKind, informer.Scope{})
	if err := e.server.Stop(); err != nil {
		t.Fatal(err)
	}
	w, err := s.WatchWithContext(context.Background(), metav1.ListOptions{ResourceVersion: "1"})
	if err == nil {
		w.Stop()
		t.Fatal("watch of a stopped server succeeded")
	}
	if !utilnet.IsConnectionRefused(err) {
		t.Errorf("watch error %v is not connection refused", err)
	}
}
