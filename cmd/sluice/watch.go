package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/sluice/sluice/internal/client"
	"github.com/sluice/sluice/internal/resource"
)

func newWatchCommand() *cobra.Command {
	var (
		namespace, selector string
		all                 bool
	)
	cmd := &cobra.Command{
		Use:   "watch KIND",
		Short: "Stream the changes to the objects of a kind, one line each, until interrupted",
		Long: `Watch prints the objects of a kind as ADDED, then every change as it happens.
A dropped stream is resumed from the last resourceVersion seen; if that has
expired, the objects are listed again and the difference is printed.`,
		Example:           "  sluice watch endpoints -l app=greeter\n  sluice watch gw -A",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeKindAndNames(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, k, err := clientAndKind(cmd, args[0])
			if err != nil {
				return err
			}
			if all {
				namespace = ""
			}
			w := &watcher{
				c: c, kind: k, namespace: namespace, selector: selector, all: all,
				out: cmd.OutOrStdout(), errOut: cmd.ErrOrStderr(), known: map[string]seen{},
			}
			return w.run(cmd.Context())
		},
	}
	f := cmd.Flags()
	addConnectionFlags(f)
	addNamespaceFlag(f, &namespace)
	f.BoolVarP(&all, "all-namespaces", "A", false, "watch the objects of every namespace")
	f.StringVarP(&selector, "selector", "l", "", "label selector, e.g. app=greeter,version!=v1")
	return cmd
}

// Reconnection delays: the first retry is quick, repeated failures back off.
const (
	minRetryDelay = 100 * time.Millisecond
	maxRetryDelay = 3 * time.Second
)

// seen is what a watch remembers of an object, to print the difference
// when it has to list again.
type seen struct {
	namespace, name, resourceVersion string
}

// watcher prints the events of one kind.
type watcher struct {
	c                   *client.Client
	kind                resource.APIResource
	namespace, selector string
	all                 bool
	out, errOut         io.Writer

	known map[string]seen // by namespace/name: the objects the output shows
	rv    string          // the resourceVersion to resume after
}

// run lists the objects, then follows their changes until ctx ends.
func (w *watcher) run(ctx context.Context) error {
	if err := w.list(ctx); err != nil {
		return err
	}
	return followResuming(ctx, "watch", w, w.errOut)
}

// resumer is a watch the CLI follows across dropped streams and restarts
// of the server.
type resumer interface {
	// follow prints the events of one stream from the watch's position,
	// calls opened once the server accepts it, and returns why it ended.
	follow(ctx context.Context, opened func()) error
	// reread reads the state again after the position expired, prints the
	// difference with what the output shows, and moves the position there.
	reread(ctx context.Context) error
	// position says where the watch resumes from ("resourceVersion 12").
	position() string
}

// followResuming follows w until ctx ends: a dropped stream is resumed from
// w's position, after a delay that grows while reconnecting fails; an
// expired position is read again; an error of the request (4xx) ends it.
func followResuming(ctx context.Context, name string, w resumer, errOut io.Writer) error {
	reread := false
	delay := minRetryDelay
	for {
		var err error
		if reread {
			err = w.reread(ctx)
		}
		if err == nil {
			reread = false
			err = w.follow(ctx, func() { delay = minRetryDelay })
		}
		if ctx.Err() != nil {
			return nil
		}
		switch {
		case errors.Is(err, resource.ErrExpired):
			fmt.Fprintf(errOut, "%s: %s has expired; listing again\n", name, w.position())
			reread = true
		case resource.StatusOf(err).Code < 500:
			return err
		default:
			fmt.Fprintf(errOut, "%s: %v; reconnecting from %s\n", name, err, w.position())
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
		delay = min(2*delay, maxRetryDelay)
	}
}

func (w *watcher) reread(ctx context.Context) error { return w.list(ctx) }

func (w *watcher) position() string { return "resourceVersion " + w.rv }

// list prints the difference between the objects listed and those known
// (everything as ADDED the first time), and sets where to watch from.
func (w *watcher) list(ctx context.Context) error {
	var raw json.RawMessage
	if err := w.c.List(ctx, collection(w.kind), w.namespace, w.selector, &raw); err != nil {
		return err
	}
	var list unstructured.UnstructuredList
	if err := list.UnmarshalJSON(raw); err != nil {
		return fmt.Errorf("decoding the server's answer: %w", err)
	}
	listed := map[string]bool{}
	for _, o := range list.Items {
		s := seen{o.GetNamespace(), o.GetName(), o.GetResourceVersion()}
		listed[s.key()] = true
		switch old, ok := w.known[s.key()]; {
		case !ok:
			w.show("ADDED", s)
		case old.resourceVersion != s.resourceVersion:
			w.show("MODIFIED", s)
		}
	}
	var gone []string
	for key := range w.known {
		if !listed[key] {
			gone = append(gone, key)
		}
	}
	sort.Strings(gone)
	for _, key := range gone {
		s := w.known[key]
		s.resourceVersion = list.GetResourceVersion()
		w.show("DELETED", s)
	}
	w.rv = list.GetResourceVersion()
	return nil
}

// follow prints the events of one watch stream from w.rv, calling opened
// once the server accepts it, and returns why the stream ended.
func (w *watcher) follow(ctx context.Context, opened func()) error {
	stream, err := w.c.Watch(ctx, collection(w.kind), w.namespace, client.WatchOptions{ResourceVersion: w.rv, LabelSelector: w.selector})
	if err != nil {
		return err
	}
	defer stream.Close()
	opened()
	for {
		ev, err := stream.Next()
		if err != nil {
			return err
		}
		if err := ev.Err(); err != nil {
			return err
		}
		var obj struct {
			Metadata struct{ Namespace, Name, ResourceVersion string } `json:"metadata"`
		}
		if err := json.Unmarshal(ev.Object, &obj); err != nil {
			return fmt.Errorf("malformed %s event: %w", ev.Type, err)
		}
		m := obj.Metadata
		w.rv = m.ResourceVersion
		if ev.Type != "BOOKMARK" {
			w.show(ev.Type, seen{m.Namespace, m.Name, m.ResourceVersion})
		}
	}
}

func (s seen) key() string { return s.namespace + "/" + s.name }

// show prints one event and remembers its object.
func (w *watcher) show(typ string, s seen) {
	if typ == "DELETED" {
		delete(w.known, s.key())
	} else {
		w.known[s.key()] = s
	}
	ns := ""
	if w.all {
		ns = s.namespace + "   "
	}
	fmt.Fprintf(w.out, "%-9s %s%s   rv=%s\n", typ, ns, ref(w.kind, s.name), s.resourceVersion)
}
