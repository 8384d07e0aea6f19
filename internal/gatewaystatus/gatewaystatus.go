// Package gatewaystatus writes the status of Gateways of class sluice and of
// the HTTPRoutes and GRPCRoutes attached to them (or to Services): whether
// each route is accepted by each parent and why not, whether its references
// resolve, and each Gateway listener's attached routes and conditions. So a
// user sees, with `sluice describe httproute x`, why a route is not attached.
//
// The decisions are the xDS translation's own (xds.Decide): the status says
// what the proxies were sent. The controller is level-triggered: every pass
// reads the informers' current state, computes every status, and writes
// only those that differ from what is stored, with the object's
// resourceVersion as precondition. An unchanged world causes no write, and
// several server replicas over one etcd converge (they compute the same
// status from the same objects; a lost race is a conflict, and the next pass
// finds nothing to write). It does not own the Gateway's addresses, nor the
// parent entries other controllers write into a route's status.
package gatewaystatus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/sluice/sluice/internal/informer"
	"github.com/sluice/sluice/internal/resource"
	"github.com/sluice/sluice/internal/store"
	"github.com/sluice/sluice/internal/xds"
)

// ControllerName is the controllerName of the route parent statuses Sluice writes.
const ControllerName gatewayv1.GatewayController = "sluice.io/gateway-controller"

// inputKinds are the kinds status depends on.
var inputKinds = []*resource.Kind{
	resource.GatewayKind, resource.HTTPRouteKind, resource.GRPCRouteKind,
	resource.ServiceKind, resource.SecretKind,
}

// Sources returns, for a list/watch source constructor, one source per kind
// the controller reads, across all namespaces.
func Sources(newSource func(*resource.Kind) informer.Source) []informer.Source {
	srcs := make([]informer.Source, len(inputKinds))
	for i, k := range inputKinds {
		srcs[i] = newSource(k)
	}
	return srcs
}

// StatusWriter writes an object's status; *store.Store is one.
type StatusWriter interface {
	UpdateStatus(ctx context.Context, obj resource.Object, opts store.WriteOptions) (resource.Object, error)
}

// Options configure a Controller.
type Options struct {
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Window is how long changes must pause before a pass (default 100ms).
	Window time.Duration
	// RetryDelay is how long a failed write waits for the next pass
	// (default 1s).
	RetryDelay time.Duration
	// Now is the clock of lastTransitionTime (default time.Now).
	Now func() time.Time
}

// Controller writes Gateway and route status.
type Controller struct {
	writer    StatusWriter
	informers []*informer.Informer
	log       *slog.Logger
	window    time.Duration
	retry     time.Duration
	now       func() time.Time
	writes    *prometheus.CounterVec
	dirty     chan struct{}
}

// New returns a controller reading sources (see Sources) and writing
// through w. It starts nothing.
func New(w StatusWriter, sources []informer.Source, opts Options) *Controller {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Window <= 0 {
		opts.Window = 100 * time.Millisecond
	}
	if opts.RetryDelay <= 0 {
		opts.RetryDelay = time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	c := &Controller{
		writer: w, log: opts.Logger, window: opts.Window, retry: opts.RetryDelay, now: opts.Now,
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_gatewaystatus_writes_total",
			Help: "Status writes of Gateways and routes, by kind and result (ok, conflict, error).",
		}, []string{"kind", "result"}),
		dirty: make(chan struct{}, 1),
	}
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(c.writes)
	}
	for _, src := range sources {
		c.informers = append(c.informers, informer.New(src, informer.Options{Logger: opts.Logger}))
	}
	return c
}

// Run writes status until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if ok, err := informer.RunGroup(ctx, &wg, c.informers, c.changed); !ok || err != nil {
		if err != nil {
			return fmt.Errorf("gatewaystatus: %w", err)
		}
		return nil
	}
	retry := time.NewTimer(0)
	defer retry.Stop()
	<-retry.C
	for {
		if !c.sync(ctx) {
			retry.Reset(c.retry)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-c.dirty:
		case <-retry.C:
		}
		// Let a burst of changes (and our own writes) settle.
		for quiet := false; !quiet; {
			select {
			case <-ctx.Done():
				return nil
			case <-c.dirty:
			case <-time.After(c.window):
				quiet = true
			}
		}
	}
}

func (c *Controller) changed() {
	select {
	case c.dirty <- struct{}{}:
	default:
	}
}

// sync makes every status match the current decisions. It returns false
// if a write failed, for a retry.
func (c *Controller) sync(ctx context.Context) bool {
	in := &xds.Inputs{}
	informer.ListAll(c.informers, in.Add)
	d := xds.Decide(in)
	now := metav1.NewTime(c.now().Truncate(time.Second))
	ok := true
	for _, gw := range in.Gateways {
		gd, ours := d.Gateways[types.NamespacedName{Namespace: gw.Namespace, Name: gw.Name}]
		if !ours {
			continue
		}
		want := GatewayStatus(gw, gd, now)
		if equality.Semantic.DeepEqual(gw.Status, want) {
			continue
		}
		next := gw.DeepCopy()
		next.Status = want
		ok = c.write(ctx, resource.GatewayKind, next) && ok
	}
	for _, r := range in.HTTPRoutes {
		ok = c.syncRoute(ctx, resource.HTTPRouteKind, r, r.Spec.ParentRefs, &r.Status.RouteStatus, d, now, func(st gatewayv1.RouteStatus) resource.Object {
			next := r.DeepCopy()
			next.Status.RouteStatus = st
			return next
		}) && ok
	}
	for _, r := range in.GRPCRoutes {
		ok = c.syncRoute(ctx, resource.GRPCRouteKind, r, r.Spec.ParentRefs, &r.Status.RouteStatus, d, now, func(st gatewayv1.RouteStatus) resource.Object {
			next := r.DeepCopy()
			next.Status.RouteStatus = st
			return next
		}) && ok
	}
	return ok
}

// syncRoute writes route r's status if it differs from the decisions;
// withStatus returns a copy of r holding a status.
func (c *Controller) syncRoute(ctx context.Context, k *resource.Kind, r resource.Object, refs []gatewayv1.ParentReference, cur *gatewayv1.RouteStatus,
	d *xds.Decisions, now metav1.Time, withStatus func(gatewayv1.RouteStatus) resource.Object) bool {
	rd := d.Routes[xds.RouteKey{Kind: k.Kind, Namespace: r.GetNamespace(), Name: r.GetName()}]
	want := RouteStatus(*cur, refs, r.GetGeneration(), rd, now)
	if equality.Semantic.DeepEqual(*cur, want) {
		return true
	}
	return c.write(ctx, k, withStatus(want))
}

// write stores obj's status if obj is still at its resourceVersion. A
// conflict means a newer object is on its way through the informer, which
// triggers the next pass; it is no failure.
func (c *Controller) write(ctx context.Context, k *resource.Kind, obj resource.Object) bool {
	_, err := c.writer.UpdateStatus(ctx, obj, store.WriteOptions{})
	switch {
	case err == nil:
		c.writes.WithLabelValues(k.Kind, "ok").Inc()
		return true
	case errors.Is(err, resource.ErrConflict), errors.Is(err, resource.ErrNotFound):
		c.writes.WithLabelValues(k.Kind, "conflict").Inc()
		return true
	default:
		c.writes.WithLabelValues(k.Kind, "error").Inc()
		c.log.Warn("status write failed; retrying", "kind", k.Kind, "namespace", obj.GetNamespace(), "name", obj.GetName(), "err", err)
		return false
	}
}

// conditions returns want with observedGeneration set and each condition's
// lastTransitionTime kept from old when its status did not change (else now),
// so that recomputing an unchanged status gives equal conditions.
func conditions(old []metav1.Condition, generation int64, now metav1.Time, want ...metav1.Condition) []metav1.Condition {
	out := make([]metav1.Condition, len(want))
	for i, c := range want {
		c.ObservedGeneration, c.LastTransitionTime = generation, now
		if o := meta.FindStatusCondition(old, c.Type); o != nil && o.Status == c.Status {
			c.LastTransitionTime = o.LastTransitionTime
		}
		out[i] = c
	}
	return out
}

func cond(typ string, ok bool, reason, message string) metav1.Condition {
	status := metav1.ConditionFalse
	if ok {
		status = metav1.ConditionTrue
	}
	return metav1.Condition{Type: typ, Status: status, Reason: reason, Message: message}
}

// RouteStatus is a route's status with Sluice's parent entries made to
// match rd (nil: the route has no parent Sluice answers for): one per
// parentRef Sluice answers for, in parentRefs order, after the entries of
// other controllers, which are kept.
func RouteStatus(old gatewayv1.RouteStatus, refs []gatewayv1.ParentReference, generation int64, rd *xds.RouteDecision, now metav1.Time) gatewayv1.RouteStatus {
	var out gatewayv1.RouteStatus
	for _, p := range old.Parents {
		if p.ControllerName != ControllerName {
			out.Parents = append(out.Parents, p)
		}
	}
	if rd == nil {
		return out
	}
	for _, pd := range rd.Parents {
		ref := refs[pd.Index]
		var prev []metav1.Condition
		if i := slices.IndexFunc(old.Parents, func(p gatewayv1.RouteParentStatus) bool {
			return p.ControllerName == ControllerName && equality.Semantic.DeepEqual(p.ParentRef, ref)
		}); i >= 0 {
			prev = old.Parents[i].Conditions
		}
		out.Parents = append(out.Parents, gatewayv1.RouteParentStatus{
			ParentRef:      ref,
			ControllerName: ControllerName,
			Conditions: conditions(prev, generation, now,
				cond(string(gatewayv1.RouteConditionAccepted), pd.Accepted, pd.Reason, pd.Message),
				cond(string(gatewayv1.RouteConditionResolvedRefs), rd.ResolvedRefs, rd.Reason, rd.Message),
			),
		})
	}
	return out
}

// routeKinds are the route kinds HTTP and HTTPS listeners take.
var routeKinds = []gatewayv1.RouteGroupKind{
	{Group: ptr(gatewayv1.Group(gatewayv1.GroupName)), Kind: "HTTPRoute"},
	{Group: ptr(gatewayv1.Group(gatewayv1.GroupName)), Kind: "GRPCRoute"},
}

func ptr[T any](v T) *T { return &v }

// GatewayStatus is gw's status made to match gd; the addresses are kept.
func GatewayStatus(gw *gatewayv1.Gateway, gd *xds.GatewayDecision, now metav1.Time) gatewayv1.GatewayStatus {
	out := gatewayv1.GatewayStatus{Addresses: gw.Status.Addresses}
	programmed := false
	for _, l := range gw.Spec.Listeners {
		ld := gd.Listeners[l.Name]
		if ld == nil {
			ld = &xds.ListenerDecision{}
		}
		programmed = programmed || ld.Programmed
		var prev []metav1.Condition
		if i := slices.IndexFunc(gw.Status.Listeners, func(s gatewayv1.ListenerStatus) bool { return s.Name == l.Name }); i >= 0 {
			prev = gw.Status.Listeners[i].Conditions
		}
		ls := gatewayv1.ListenerStatus{Name: l.Name, AttachedRoutes: ld.AttachedRoutes, SupportedKinds: []gatewayv1.RouteGroupKind{}}
		accepted := cond(string(gatewayv1.ListenerConditionAccepted), true, string(gatewayv1.ListenerReasonAccepted), "the listener is valid")
		if ld.Supported {
			ls.SupportedKinds = slices.Clone(routeKinds)
		} else {
			accepted = cond(string(gatewayv1.ListenerConditionAccepted), false, string(gatewayv1.ListenerReasonUnsupportedProtocol), fmt.Sprintf("protocol %s is not served; Sluice serves HTTP and HTTPS", l.Protocol))
		}
		conflicted := cond(string(gatewayv1.ListenerConditionConflicted), false, string(gatewayv1.ListenerReasonNoConflicts), "no conflict")
		if ld.Conflicted {
			conflicted = cond(string(gatewayv1.ListenerConditionConflicted), true, string(gatewayv1.ListenerReasonProtocolConflict), fmt.Sprintf("an earlier listener on port %d has another protocol", l.Port))
		}
		resolved := cond(string(gatewayv1.ListenerConditionResolvedRefs), true, string(gatewayv1.ListenerReasonResolvedRefs), "every reference resolves")
		if len(ld.CertificateProblems) > 0 {
			resolved = cond(string(gatewayv1.ListenerConditionResolvedRefs), false, string(gatewayv1.ListenerReasonInvalidCertificateRef), joinProblems(ld.CertificateProblems))
		}
		prog := cond(string(gatewayv1.ListenerConditionProgrammed), true, string(gatewayv1.ListenerReasonProgrammed), "served to the gateway's proxies")
		if !ld.Programmed {
			prog = cond(string(gatewayv1.ListenerConditionProgrammed), false, string(gatewayv1.ListenerReasonInvalid), "not served: see the other conditions")
		}
		ls.Conditions = conditions(prev, gw.Generation, now, accepted, conflicted, resolved, prog)
		out.Listeners = append(out.Listeners, ls)
	}
	gwProg := cond(string(gatewayv1.GatewayConditionProgrammed), true, string(gatewayv1.GatewayReasonProgrammed), "served to the gateway's proxies")
	if !programmed {
		gwProg = cond(string(gatewayv1.GatewayConditionProgrammed), false, string(gatewayv1.GatewayReasonInvalid), "no listener is served")
	}
	out.Conditions = conditions(gw.Status.Conditions, gw.Generation, now,
		cond(string(gatewayv1.GatewayConditionAccepted), true, string(gatewayv1.GatewayReasonAccepted), "accepted by "+string(ControllerName)),
		gwProg,
	)
	return out
}

func joinProblems(ps []string) string {
	out := ps[0]
	for _, p := range ps[1:] {
		out += "; " + p
	}
	return out
}
