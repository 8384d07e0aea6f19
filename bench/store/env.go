package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sluice/sluice/bench/internal/harness"
	"github.com/sluice/sluice/internal/client"
	"github.com/sluice/sluice/internal/resource"
	"github.com/sluice/sluice/internal/server"
	"github.com/sluice/sluice/internal/store"
)

// env is one embedded etcd and the ways in that the benchmark compares: a
// raw etcd client, Sluice's store over that same client, and a Sluice server
// (REST API, with its own etcd client) on loopback.
type env struct {
	etcd  *store.Embedded
	raw   *clientv3.Client
	store *store.Store
	// apiURL is the server's base URL; http is a client tuned for many
	// concurrent requests to it; api is internal/client, as the CLI uses it.
	apiURL string
	http   *http.Client
	api    *client.Client
	// payload is the value the store writes for a benchService, for the raw
	// etcd baseline.
	payload []byte

	stopServer context.CancelFunc
	serverDone chan error
}

// maxConns bounds the connections the benchmark opens to the API at once.
func maxConns(cfg config) int {
	n := 0
	for _, c := range cfg.Concurrency {
		n = max(n, c)
	}
	for _, w := range cfg.Watchers {
		n = max(n, w)
	}
	return n
}

// startEnv starts etcd in dir, the store and the server.
func startEnv(ctx context.Context, dir string, conns int, log *slog.Logger) (_ *env, err error) {
	e := &env{}
	defer func() {
		if err != nil {
			e.close()
		}
	}()
	// The embedded etcd's defaults keep fsync on, as in production.
	if e.etcd, err = store.StartEmbedded(ctx, store.EmbedConfig{Dir: filepath.Join(dir, "etcd"), Logger: log}); err != nil {
		return nil, err
	}
	endpoint := e.etcd.Endpoint()
	e.raw, err = clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return nil, fmt.Errorf("etcd client: %w", err)
	}
	e.store = store.New(e.raw, resource.Builtin(), store.Options{Logger: log})

	srvCtx, stop := context.WithCancel(context.Background())
	srv := server.New(server.Config{EtcdEndpoints: []string{endpoint}, HTTPAddr: "127.0.0.1:0", XDSAddr: "127.0.0.1:0", Logger: log})
	e.stopServer, e.serverDone = stop, make(chan error, 1)
	go func() { e.serverDone <- srv.Run(srvCtx) }()
	select {
	case <-srv.Ready():
	case err := <-e.serverDone:
		e.stopServer, e.serverDone = nil, nil
		stop()
		return nil, fmt.Errorf("sluice server: %w", err)
	case <-time.After(60 * time.Second):
		return nil, fmt.Errorf("sluice server not ready after 60s")
	}
	e.apiURL = "http://" + srv.HTTPAddr()
	e.http = &http.Client{Transport: &http.Transport{
		DialContext: (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		// Every worker keeps its connection: no limit on connections to the
		// one host, and room for all of them in the idle pool.
		MaxConnsPerHost:     0,
		MaxIdleConns:        0,
		MaxIdleConnsPerHost: conns + 16,
		IdleConnTimeout:     90 * time.Second,
	}}
	// internal/client uses http.DefaultTransport, whose MaxConnsPerHost is
	// 0: a thousand watch streams to one host can be open at once.
	if e.api, err = client.New(e.apiURL, ""); err != nil {
		return nil, err
	}
	if e.payload, err = e.storedForm(ctx); err != nil {
		return nil, err
	}
	if err := e.checkKeyLayout(ctx); err != nil {
		return nil, err
	}
	return e, nil
}

// close stops the server, then etcd.
func (e *env) close() {
	if e.http != nil {
		e.http.CloseIdleConnections()
	}
	if e.stopServer != nil {
		e.stopServer()
		<-e.serverDone
	}
	if e.raw != nil {
		e.raw.Close()
	}
	if e.etcd != nil {
		e.etcd.Close()
	}
}

// benchService is the object every phase writes: a Service of typical size.
func benchService(namespace, name string, seq int) *resource.Service {
	return &resource.Service{
		TypeMeta: metav1.TypeMeta{APIVersion: resource.ServiceKind.APIVersion(), Kind: resource.ServiceKind.Kind},
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Namespace:   namespace,
			Labels:      map[string]string{"app": "greeter", "tier": "backend", "team": "payments"},
			Annotations: map[string]string{seqAnnotation: strconv.Itoa(seq)},
		},
		Spec: resource.ServiceSpec{
			Selector: map[string]string{"app": "greeter", "version": "v1"},
			Ports: []resource.ServicePort{
				{Name: "grpc", Port: 50051, Protocol: resource.ProtocolGRPC},
				{Name: "http", Port: 8080, Protocol: resource.ProtocolHTTP},
			},
		},
	}
}

// seqAnnotation changes on every update, so that no update is a no-op.
const seqAnnotation = "bench.sluice.io/seq"

// storedForm returns the JSON the store writes for a benchService: the
// defaulted object with uid, creationTimestamp and generation, without
// resourceVersion (a dry-run create builds it without writing).
func (e *env) storedForm(ctx context.Context) ([]byte, error) {
	obj, err := e.store.Create(ctx, benchService("bench", "payload", 0), store.WriteOptions{DryRun: true})
	if err != nil {
		return nil, fmt.Errorf("dry-run create: %w", err)
	}
	obj.SetResourceVersion("")
	return json.Marshal(obj)
}

// serviceKey is the etcd key of a Service, as documented in DESIGN.md
// (/sluice/resources/<group>/<Kind>/<namespace>/<name>); checkKeyLayout
// makes sure the store agrees, so the baseline writes where the store does.
func serviceKey(namespace, name string) string {
	return servicePrefix(namespace) + name
}

func servicePrefix(namespace string) string {
	return store.Prefix + resource.ServiceKind.Group + "/" + resource.ServiceKind.Kind + "/" + namespace + "/"
}

func (e *env) checkKeyLayout(ctx context.Context) error {
	const ns = "bench-layout"
	if _, err := e.store.Create(ctx, benchService(ns, "probe", 0), store.WriteOptions{}); err != nil {
		return fmt.Errorf("layout probe: %w", err)
	}
	defer e.deleteNamespace(ctx, ns)
	resp, err := e.raw.Get(ctx, serviceKey(ns, "probe"))
	if err != nil {
		return fmt.Errorf("layout probe: %w", err)
	}
	if len(resp.Kvs) != 1 {
		return fmt.Errorf("the store did not write Services at %s: the raw etcd baseline would not match it", serviceKey(ns, "probe"))
	}
	return nil
}

// deleteNamespace removes every Service of a namespace.
func (e *env) deleteNamespace(ctx context.Context, ns string) error {
	_, err := e.raw.Delete(ctx, servicePrefix(ns), clientv3.WithPrefix())
	return err
}

// reset deletes a measurement's namespace and compacts etcd's history, as a
// server's periodic compaction would, so that every measurement starts with
// the same data in etcd and the same heap in this process: etcd keeps an
// index entry for every deleted key until compaction.
func (e *env) reset(ctx context.Context, ns string) error {
	resp, err := e.raw.Delete(ctx, servicePrefix(ns), clientv3.WithPrefix())
	if err != nil {
		return fmt.Errorf("cleaning up %s: %w", ns, err)
	}
	if _, err := e.raw.Compact(ctx, resp.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		return fmt.Errorf("compacting etcd after %s: %w", ns, err)
	}
	return nil
}

// raiseFileLimit makes sure the process may open need file descriptors,
// and says what to do when the hard limit is too low.
func raiseFileLimit(need uint64) error {
	hard, err := harness.RaiseFileLimit(need)
	if err == nil && hard < need {
		err = fmt.Errorf("this run needs about %d open files but the hard limit is %d: raise it (ulimit -Hn) or pass fewer -watchers", need, hard)
	}
	return err
}

// tempDir returns cfg.Dir, or a new temporary directory and its removal.
func tempDir(dir string) (string, func(), error) {
	if dir != "" {
		return dir, func() {}, os.MkdirAll(dir, 0o700)
	}
	d, err := os.MkdirTemp("", "sluice-bench-")
	if err != nil {
		return "", nil, err
	}
	return d, func() { os.RemoveAll(d) }, nil
}
