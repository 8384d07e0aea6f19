// Package probe runs one attempt of an active health check: an HTTP request,
// a TCP connect or a gRPC health check, against one address.
//
// It owns the attempt only: how to send it and how to judge the answer
// (Run). It takes plain parameters (Check) and imports no other package of
// Sluice, so that the server's registry and the gateway's data plane share
// one implementation of each check. Where a check goes, its defaults,
// scheduling, thresholds and what a result changes belong to the callers:
// the registry (an Endpoint's spec.healthCheck, written into its status) and
// the gateway (a cluster's health_checks, which take endpoints out of its
// load balancing). The package keeps no state between attempts: every
// attempt opens its own connection and closes it before Run returns.
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
	"strings"
	"time"
	"unicode/utf8"
)

// State is the outcome of one attempt, in Consul's terms. Its values are
// the strings of an Endpoint's check states.
type State string

// The states. A warning is an instance that is up but shedding load (an
// HTTP 429): callers keep it in traffic.
const (
	Passing  State = "passing"
	Warning  State = "warning"
	Critical State = "critical"
)

// MaxOutput is the most of an attempt's output a Result holds (what an
// Endpoint's status keeps of a check's output).
const MaxOutput = 4096

// Result is the outcome of one attempt.
type Result struct {
	State  State  // passing, warning or critical
	Output string // what happened, at most MaxOutput bytes (cut on a UTF-8 boundary, with a note that it was cut)
}

// Check is one health check: exactly one of HTTP, TCP and GRPC, and the
// timeout of an attempt. It has no defaults: callers fill it in.
type Check struct {
	HTTP *HTTP
	TCP  *TCP
	GRPC *GRPC
	// Timeout bounds an attempt; it must be positive.
	Timeout time.Duration
	// UserAgent is the User-Agent of HTTP checks (unless their headers set
	// one) and of gRPC checks; "" for UserAgent.
	UserAgent string
}

// HTTP is an HTTP GET of Path.
type HTTP struct {
	// Path must start with "/"; it may carry a query.
	Path string
	// ExpectedStatuses are the statuses that pass; there must be one.
	ExpectedStatuses []StatusRange
	// Headers are set on the request; a Host header sets its host.
	Headers map[string]string
}

// StatusRange is an inclusive range of HTTP status codes.
type StatusRange struct{ Start, End int }

// TCP is a TCP connect.
type TCP struct{}

// GRPC is a call of grpc.health.v1.Health/Check about Service ("" asks
// about the server as a whole).
type GRPC struct{ Service string }

// Run performs one attempt of c against addr ("host:port", an IPv6 address
// in brackets), bounded by c.Timeout and by ctx. It never fails: anything
// that goes wrong, including a check that makes no sense, is a critical
// Result saying what happened.
func Run(ctx context.Context, addr string, c Check) Result {
	if c.Timeout <= 0 {
		return critical(fmt.Sprintf("invalid timeout %s: must be positive", c.Timeout))
	}
	if c.UserAgent == "" {
		c.UserAgent = UserAgent
	}
	a := attempt{parent: ctx, addr: addr, timeout: c.Timeout, userAgent: c.UserAgent}
	var cancel context.CancelFunc
	a.ctx, cancel = context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	switch {
	case c.HTTP != nil && c.TCP == nil && c.GRPC == nil:
		return a.checkHTTP(c.HTTP)
	case c.TCP != nil && c.HTTP == nil && c.GRPC == nil:
		return a.checkTCP()
	case c.GRPC != nil && c.HTTP == nil && c.TCP == nil:
		return a.checkGRPC(c.GRPC)
	default:
		return critical("invalid health check: exactly one of http, tcp and grpc must be set")
	}
}

// attempt is one run of a check: its target and its deadline.
type attempt struct {
	parent    context.Context // the caller's context
	ctx       context.Context // parent bounded by timeout
	addr      string
	timeout   time.Duration
	userAgent string
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
	return Result{State: Passing, Output: prefix + "Success"}
}

func critical(output string) Result {
	return Result{State: Critical, Output: clip(output)}
}

// cutNote ends an output that was cut to MaxOutput bytes.
var cutNote = cutNoteFor(MaxOutput)

func cutNoteFor(max int) string { return fmt.Sprintf(" ... (output cut to %d bytes)", max) }

// clip makes an attempt's output fit a Result (see Clip).
func clip(s string) string { return Clip(s, MaxOutput) }

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
