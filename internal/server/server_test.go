package server_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sluice/sluice/internal/client"
	"github.com/sluice/sluice/internal/resource"
	"github.com/sluice/sluice/internal/server"
	"github.com/sluice/sluice/internal/servertest"
)

var services = client.ResourceOf(resource.ServiceKind)

func svc(name string, port int32) *resource.Service {
	return &resource.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "sluice.io/v1alpha1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       resource.ServiceSpec{Ports: []resource.ServicePort{{Port: port}}},
	}
}

func TestRestartKeepsData(t *testing.T) {
	srv := servertest.Start(t, server.Config{})
	c := srv.Client(t, "")
	ctx := context.Background()
	var created resource.Service
	if err := c.Create(ctx, services, "default", svc("greeter", 80), &created, false); err != nil {
		t.Fatal(err)
	}
	srv.Restart(t)
	var got resource.Service
	if err := c.Get(ctx, services, "default", "greeter", &got); err != nil {
		t.Fatalf("after restart: %v", err)
	}
	if got.UID != created.UID || got.ResourceVersion != created.ResourceVersion || got.Spec.Ports[0].Port != 80 {
		t.Errorf("after restart got uid %s rv %s, want uid %s rv %s", got.UID, got.ResourceVersion, created.UID, created.ResourceVersion)
	}
}

// TestAcknowledgedWritesSurviveShutdown writes concurrently while the server
// shuts down: every write that was acknowledged must be there after restart.
func TestAcknowledgedWritesSurviveShutdown(t *testing.T) {
	srv := servertest.Start(t, server.Config{})
	c := srv.Client(t, "")
	var acked sync.Map
	var n atomic.Int32
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				name := fmt.Sprintf("w%d-%d", w, i)
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				err := c.Create(ctx, services, "default", svc(name, 80), nil, false)
				cancel()
				if err == nil {
					acked.Store(name, true)
					n.Add(1)
				}
			}
		})
	}
	for n.Load() < 50 {
		time.Sleep(10 * time.Millisecond)
	}
	if err := srv.Stop(); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
	close(stop)
	wg.Wait()
	srv.Restart(t)
	var list resource.ServiceList
	if err := c.List(context.Background(), services, "default", "", &list); err != nil {
		t.Fatal(err)
	}
	stored := map[string]bool{}
	for _, s := range list.Items {
		stored[s.Name] = true
	}
	missing := 0
	acked.Range(func(k, _ any) bool {
		if !stored[k.(string)] {
			missing++
			t.Errorf("acknowledged write %s lost", k)
		}
		return missing < 10
	})
	t.Logf("%d acknowledged writes, all present after restart", n.Load())
}

func TestTwoServersShareOneEtcd(t *testing.T) {
	etcd := servertest.StartEtcd(t)
	a := servertest.Start(t, server.Config{EtcdEndpoints: []string{etcd.Endpoint()}})
	b := servertest.Start(t, server.Config{EtcdEndpoints: []string{etcd.Endpoint()}})
	ca, cb := a.Client(t, ""), b.Client(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	w, err := cb.Watch(ctx, services, "default", client.WatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var created resource.Service
	if err := ca.Create(ctx, services, "default", svc("greeter", 80), &created, false); err != nil {
		t.Fatal(err)
	}
	for {
		ev, err := w.Next()
		if err != nil {
			t.Fatal(err)
		}
		if ev.Type == "ADDED" {
			if !strings.Contains(string(ev.Object), `"greeter"`) {
				t.Fatalf("server B's watch saw %s", ev.Object)
			}
			break
		}
	}
	var viaB resource.Service
	if err := cb.Get(ctx, services, "default", "greeter", &viaB); err != nil || viaB.UID != created.UID {
		t.Fatalf("server B reads %v, %v; want the object created through A", viaB.UID, err)
	}

	// The same stale update through both servers: exactly one wins.
	var wins, conflicts atomic.Int32
	var wg sync.WaitGroup
	for i, c := range []*client.Client{ca, cb, ca, cb} {
		wg.Go(func() {
			upd := created.DeepCopy()
			upd.Spec.Ports[0].Port = int32(9000 + i)
			err := c.Update(ctx, services, "default", "greeter", upd, nil, false)
			switch {
			case err == nil:
				wins.Add(1)
			case errors.Is(err, resource.ErrConflict):
				conflicts.Add(1)
			default:
				t.Errorf("update %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 || conflicts.Load() != 3 {
		t.Errorf("wins %d conflicts %d, want 1 and 3", wins.Load(), conflicts.Load())
	}

	// A replica going away does not affect the other.
	if err := a.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := cb.Delete(ctx, services, "default", "greeter", nil, nil, false); err != nil {
		t.Errorf("delete through B after A stopped: %v", err)
	}
}

func TestReadyzFollowsTheStore(t *testing.T) {
	etcd := servertest.StartEtcd(t)
	srv := servertest.Start(t, server.Config{EtcdEndpoints: []string{etcd.Endpoint()}, RequestTimeout: time.Second})
	get := func(path string) int {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get("/readyz"); code != 200 {
		t.Fatalf("readyz = %d with etcd up", code)
	}
	etcd.Close()
	if code := get("/readyz"); code != 503 {
		t.Errorf("readyz = %d with etcd down, want 503", code)
	}
	if code := get("/healthz"); code != 200 {
		t.Errorf("healthz = %d with etcd down, want 200 (the process is alive)", code)
	}
	resp, err := http.Get(srv.URL + "/apis/sluice.io/v1alpha1/namespaces/default/services")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 {
		t.Errorf("list with etcd down = %d, want 503", resp.StatusCode)
	}
}

func TestRefusesNetworkAddressWithoutAuth(t *testing.T) {
	tokens := filepath.Join(t.TempDir(), "tokens")
	os.WriteFile(tokens, []byte("admin-token-0123456789,admin\n"), 0o600)
	cases := []struct {
		addr     string
		tokens   string
		insecure bool
		wantErr  bool
	}{
		{"127.0.0.1:7070", "", false, false},
		{"localhost:7070", "", false, false},
		{"[::1]:7070", "", false, false},
		{"0.0.0.0:7070", "", false, true},
		{":7070", "", false, true},
		{"10.1.2.3:7070", "", false, true},
		{"0.0.0.0:7070", tokens, false, false},
		{"0.0.0.0:7070", "", true, false},
	}
	for _, c := range cases {
		err := server.CheckListenAddr(c.addr, c.tokens != "", c.insecure)
		if (err != nil) != c.wantErr {
			t.Errorf("CheckListenAddr(%q, tokens=%v, insecure=%v) = %v, want error %v", c.addr, c.tokens != "", c.insecure, err, c.wantErr)
		}
		if err != nil && !(strings.Contains(err.Error(), "--token-file") && strings.Contains(err.Error(), "--insecure")) {
			t.Errorf("error %q does not tell how to fix it", err)
		}
	}
	// Run refuses before touching the data dir.
	dir := filepath.Join(t.TempDir(), "data")
	err := server.New(server.Config{DataDir: dir, HTTPAddr: "0.0.0.0:0"}).Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "refusing") {
		t.Fatalf("Run on 0.0.0.0 without tokens: %v", err)
	}
	if _, statErr := os.Stat(dir); !os.IsNotExist(statErr) {
		t.Errorf("refused server created its data dir")
	}
	// With tokens it serves on all interfaces.
	srv := servertest.Start(t, server.Config{HTTPAddr: "0.0.0.0:0", TokenFile: tokens})
	if !strings.Contains(srv.URL, "[::]") && !strings.Contains(srv.URL, "0.0.0.0") {
		t.Logf("serving at %s", srv.URL)
	}
}

func TestBadTokenFile(t *testing.T) {
	dir := t.TempDir()
	cases := map[string]string{
		"short":     "short,admin\n",
		"bad role":  "a-long-enough-token-123,root\n",
		"no role":   "a-long-enough-token-123\n",
		"empty":     "# nothing\n",
		"duplicate": "a-long-enough-token-123,admin\na-long-enough-token-123,read\n",
	}
	for name, content := range cases {
		path := filepath.Join(dir, strings.ReplaceAll(name, " ", "-"))
		os.WriteFile(path, []byte(content), 0o600)
		err := server.New(server.Config{DataDir: filepath.Join(dir, "d"), HTTPAddr: "127.0.0.1:0", TokenFile: path}).Run(context.Background())
		if err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: err = %v, want an error naming the token file", name, err)
		}
	}
}
