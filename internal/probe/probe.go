// Package probe runs one attempt of an Endpoint's active health check: an HTTP
// request, a TCP connect or a gRPC health check.
//
// It owns the attempt only: where to send it (Target), how to send it and how
// to judge the answer (Run). Scheduling, thresholds, which replica checks which
// Endpoint and writing the result into the Endpoint's status belong to the
// registry. The package keeps no state between attempts: every attempt opens
// its own connection and closes it before Run returns.
//
// States and output follow Consul's agent checks (agent/checks in
// hashicorp/consul), since Sluice reports checks in Consul's terms; where
// Consul and Envoy differ, the comments say which one is followed and why.
package probe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sluice/sluice/internal/resource"
)

// ErrNoPort is returned by Target when the Endpoint has no port to check.
var ErrNoPort = errors.New("no such port")

// Result is the outcome of one attempt.
type Result struct {
	State  resource.CheckState // passing, warning or critical
	Output string              // what happened, at most resource.MaxCheckOutput bytes (cut on a UTF-8 boundary, with a note that it was cut)
}

// Target resolves where to check: the address and port of the Endpoint's port
// named by spec.healthCheck.port, or its first port when that is empty or the
// Endpoint has no health check. The result is "host:port", an IPv6 address in
// brackets. It fails, wrapping ErrNoPort, when the port name names no port.
func Target(ep *resource.Endpoint) (addr string, err error) {
	if ep == nil {
		return "", errors.New("probe: no endpoint")
	}
	if ep.Spec.Address == "" {
		return "", fmt.Errorf("probe: endpoint %s/%s: no address", ep.Namespace, ep.Name)
	}
	name := ""
	if hc := ep.Spec.HealthCheck; hc != nil {
		name = hc.Port
	}
	port, ok := findPort(ep.Spec.Ports, name)
	if !ok {
		if name == "" {
			return "", fmt.Errorf("probe: endpoint %s/%s has no ports: %w", ep.Namespace, ep.Name, ErrNoPort)
		}
		return "", fmt.Errorf("probe: endpoint %s/%s: health check port %q: %w", ep.Namespace, ep.Name, name, ErrNoPort)
	}
	if port < 1 || port > 65535 {
		return "", fmt.Errorf("probe: endpoint %s/%s: port %d out of range", ep.Namespace, ep.Name, port)
	}
	return net.JoinHostPort(ep.Spec.Address, strconv.Itoa(int(port))), nil
}

func findPort(ports []resource.EndpointPort, name string) (int32, bool) {
	if name == "" {
		if len(ports) == 0 {
			return 0, false
		}
		return ports[0].Port, true
	}
	for _, p := range ports {
		if p.Name == name {
			return p.Port, true
		}
	}
	// A number that names no port is the port to check (a health port that
	// serves no traffic).
	if n, err := strconv.ParseInt(name, 10, 32); err == nil {
		return int32(n), true
	}
	return 0, false
}

// Run performs one attempt of hc against addr ("host:port"), bounded by
// hc.Timeout and by ctx. It never fails: anything that goes wrong, including
// a check that makes no sense, is a critical Result saying what happened.
//
// hc need not be defaulted: Run defaults a copy the way the store does, so a
// check that has not been through the store behaves like one that has.
func Run(ctx context.Context, addr string, hc *resource.HealthCheck) Result {
	if hc == nil {
		return critical("no health check")
	}
	hc = withDefaults(hc)
	timeout := hc.Timeout.Duration
	if timeout <= 0 {
		return critical(fmt.Sprintf("invalid timeout %s: must be positive", timeout))
	}
	a := attempt{parent: ctx, addr: addr, timeout: timeout}
	var cancel context.CancelFunc
	a.ctx, cancel = context.WithTimeout(ctx, timeout)
	defer cancel()
	switch {
	case hc.HTTP != nil && hc.TCP == nil && hc.GRPC == nil:
		return a.checkHTTP(hc.HTTP)
	case hc.TCP != nil && hc.HTTP == nil && hc.GRPC == nil:
		return a.checkTCP()
	case hc.GRPC != nil && hc.HTTP == nil && hc.TCP == nil:
		return a.checkGRPC(hc.GRPC)
	default:
		return critical("invalid health check: exactly one of http, tcp and grpc must be set")
	}
}

// withDefaults returns a defaulted copy of hc, through the resource package's
// own defaulting so that the defaults live in one place.
func withDefaults(hc *resource.HealthCheck) *resource.HealthCheck {
	ep := &resource.Endpoint{Spec: resource.EndpointSpec{HealthCheck: hc.DeepCopy()}}
	resource.EndpointKind.Default(ep)
	return ep.Spec.HealthCheck
}

// attempt is one run of a check: its target and its deadline.
type attempt struct {
	parent  context.Context // the caller's context
	ctx     context.Context // parent bounded by timeout
	addr    string
	timeout time.Duration
}

// failure describes err, saying so when it came from the attempt's timeout
// rather than from the caller cancelling.
func (a *attempt) failure(err error) string {
	if a.parent.Err() == nil && errors.Is(a.ctx.Err(), context.DeadlineExceeded) {
		return fmt.Sprintf("timed out after %s (%v)", a.timeout, err)
	}
	return err.Error()
}

// checkTCP connects and hangs up at once: the check passes when the connection
// opens within the timeout (Consul's CheckTCP, Envoy's TCP health check with
// no send/receive payload).
func (a *attempt) checkTCP() Result {
	prefix := "TCP connect " + a.addr + ": "
	var d net.Dialer
	conn, err := d.DialContext(a.ctx, "tcp", a.addr)
	if err != nil {
		// net.OpError repeats "dial tcp <addr>"; the prefix already says it.
		var op *net.OpError
		if errors.As(err, &op) && op.Err != nil {
			err = op.Err
		}
		return critical(prefix + a.failure(err))
	}
	conn.Close()
	return Result{State: resource.CheckPassing, Output: prefix + "Success"}
}

func critical(output string) Result {
	return Result{State: resource.CheckCritical, Output: clip(output)}
}

// cutNote ends an output that was cut to resource.MaxCheckOutput bytes.
var cutNote = cutNoteFor(resource.MaxCheckOutput)

func cutNoteFor(max int) string { return fmt.Sprintf(" ... (output cut to %d bytes)", max) }

// clip makes a check's output fit an Endpoint's status (see Clip).
func clip(s string) string { return Clip(s, resource.MaxCheckOutput) }

// Clip makes s fit a status field of max bytes: valid UTF-8 (so that a JSON
// round trip does not change its length) and at most max bytes, cut on a
// rune boundary and ending with a note saying so when it was cut. The
// registry clips heartbeat outputs with it too.
func Clip(s string, max int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= max {
		return s
	}
	note := cutNoteFor(max)
	n := max - len(note)
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + note
}
