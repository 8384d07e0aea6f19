package gatewaystatus

import (
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/sluice/sluice/internal/xds"
)

// TestRouteStatusKeepsOthersAndTransitionTimes: recomputing a route's
// status keeps other controllers' parent entries and the transition time
// of a condition whose status did not change, and moves it when it did.
func TestRouteStatusKeepsOthersAndTransitionTimes(t *testing.T) {
	t0 := metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	t1 := metav1.NewTime(t0.Add(time.Hour))
	kind := gatewayv1.Kind("Gateway")
	refs := []gatewayv1.ParentReference{{Name: "other-gw", Kind: &kind}, {Name: "web", Kind: &kind}}
	foreign := gatewayv1.RouteParentStatus{ParentRef: refs[0], ControllerName: "example.com/other",
		Conditions: []metav1.Condition{{Type: "Accepted", Status: metav1.ConditionTrue, Reason: "Accepted", LastTransitionTime: t0}}}
	rd := &xds.RouteDecision{ResolvedRefs: true, Reason: "ResolvedRefs", Message: "ok",
		Parents: []xds.ParentDecision{{Index: 1, Accepted: true, Reason: "Accepted", Message: "attached"}}}

	first := RouteStatus(gatewayv1.RouteStatus{Parents: []gatewayv1.RouteParentStatus{foreign}}, refs, 3, rd, t0)
	if len(first.Parents) != 2 || first.Parents[0].ControllerName != "example.com/other" || first.Parents[1].ControllerName != ControllerName {
		t.Fatalf("parents = %+v, want the other controller's entry, then Sluice's", first.Parents)
	}
	same := RouteStatus(first, refs, 3, rd, t1)
	if got := meta.FindStatusCondition(same.Parents[1].Conditions, "Accepted").LastTransitionTime; !got.Equal(&t0) {
		t.Errorf("an unchanged Accepted moved its transition time to %v", got)
	}
	rd.Parents[0] = xds.ParentDecision{Index: 1, Reason: "NotAllowedByListeners", Message: "no"}
	changed := RouteStatus(same, refs, 4, rd, t1)
	a := meta.FindStatusCondition(changed.Parents[1].Conditions, "Accepted")
	if a.Status != metav1.ConditionFalse || !a.LastTransitionTime.Equal(&t1) || a.ObservedGeneration != 4 {
		t.Errorf("Accepted after the change = %+v, want False since %v at generation 4", a, t1)
	}
	if r := meta.FindStatusCondition(changed.Parents[1].Conditions, "ResolvedRefs"); !r.LastTransitionTime.Equal(&t0) {
		t.Errorf("an unchanged ResolvedRefs moved its transition time to %v", r.LastTransitionTime)
	}
	if gone := RouteStatus(changed, refs, 4, nil, t1); len(gone.Parents) != 1 || gone.Parents[0].ControllerName != "example.com/other" {
		t.Errorf("with no Sluice parent left, parents = %+v, want only the other controller's", gone.Parents)
	}
}
