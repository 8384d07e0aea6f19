package registry

import (
	"context"
	"encoding/json"
	"time"

	"github.com/sluice/sluice/internal/resource"
)

// checker runs the active health check of one Endpoint this replica owns,
// applying the thresholds, and keeps the latest outcome for reconcile.
type checker struct {
	spec   string // what the check was started with; a change restarts it
	cancel context.CancelFunc
	done   chan struct{}

	// Guarded by Registry.checksMu.
	res    checkResult
	hasRes bool
}

// checkSpec is what, when it changes, restarts an Endpoint's check.
func checkSpec(ep *resource.Endpoint) string {
	b, _ := json.Marshal(struct {
		HC    *resource.HealthCheck
		Addr  string
		Ports []resource.EndpointPort
	}{ep.Spec.HealthCheck, ep.Spec.Address, ep.Spec.Ports})
	return string(b)
}

// ensureChecker starts the check of key, or restarts it if its spec changed.
func (r *Registry) ensureChecker(key string, ep *resource.Endpoint) {
	spec := checkSpec(ep)
	r.checksMu.Lock()
	defer r.checksMu.Unlock()
	if c, ok := r.checks[key]; ok {
		if c.spec == spec {
			return
		}
		c.cancel()
		<-c.done
	}
	// The thresholds continue from the state in the status, so a check
	// that moves to another replica does not flap.
	var state resource.CheckState
	for _, s := range ep.Status.Checks {
		if s.Name == resource.CheckActive {
			state = s.State
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &checker{spec: spec, cancel: cancel, done: make(chan struct{})}
	r.checks[key] = c
	r.metrics.checkers.Inc()
	go func() {
		defer close(c.done)
		defer r.metrics.checkers.Dec()
		r.runCheck(ctx, key, ep.DeepCopy(), state, c)
	}()
}

func (r *Registry) stopChecker(key string) {
	r.checksMu.Lock()
	c, ok := r.checks[key]
	delete(r.checks, key)
	r.checksMu.Unlock()
	if ok {
		c.cancel()
		<-c.done
	}
}

func (r *Registry) stopAllChecks() {
	r.checksMu.Lock()
	keys := make([]string, 0, len(r.checks))
	for k := range r.checks {
		keys = append(keys, k)
	}
	r.checksMu.Unlock()
	for _, k := range keys {
		r.stopChecker(k)
	}
}

// result is the thresholded outcome of key's check, if this replica has one
// for the Endpoint's current check.
func (r *Registry) result(key string, ep *resource.Endpoint) (checkResult, bool) {
	r.checksMu.Lock()
	defer r.checksMu.Unlock()
	c, ok := r.checks[key]
	if !ok || !c.hasRes || c.spec != checkSpec(ep) {
		return checkResult{}, false
	}
	return c.res, true
}

// runCheck probes every interval, the first time at once. A state changes
// after HealthyThreshold successes or UnhealthyThreshold failures in a row,
// except the first result, which decides at once (as a Kubernetes probe
// starts out failing, an unknown Endpoint is not kept waiting).
func (r *Registry) runCheck(ctx context.Context, key string, ep *resource.Endpoint, state resource.CheckState, c *checker) {
	hc := ep.Spec.HealthCheck
	addr, addrErr := target(ep)
	t := time.NewTicker(hc.Interval.Duration)
	defer t.Stop()
	var successes, failures int32
	for {
		var res checkResult
		if addrErr != nil {
			res = checkResult{State: resource.CheckCritical, Output: addrErr.Error()}
		} else {
			res = runProbe(ctx, addr, hc)
		}
		if ctx.Err() != nil {
			return
		}
		r.metrics.checks.WithLabelValues(string(res.State)).Inc()
		ok := res.State != resource.CheckCritical
		if ok {
			successes, failures = successes+1, 0
		} else {
			successes, failures = 0, failures+1
		}
		healthy := state == resource.CheckPassing || state == resource.CheckWarning
		switch {
		case state == "":
			state = res.State
		case ok && (healthy || successes >= hc.HealthyThreshold):
			state = res.State
		case !ok && healthy && failures >= hc.UnhealthyThreshold:
			state = resource.CheckCritical
		}
		r.checksMu.Lock()
		changed := !c.hasRes || c.res.State != state || c.res.Output != res.Output
		c.res, c.hasRes = checkResult{State: state, Output: res.Output}, true
		r.checksMu.Unlock()
		if changed {
			r.ctrl.Enqueue(key)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
