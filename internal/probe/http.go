package probe

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// UserAgent is the User-Agent of HTTP checks (and the prefix of gRPC checks'),
// unless the check sets its own (Check.UserAgent, or an HTTP check's headers).
const UserAgent = "sluice-health-check/1"

// checkHTTP sends GET http://addr<path> and judges the response by its status:
// inside the expected ranges it passes, 429 is a warning and anything else is
// critical.
//
//   - Like Consul, 429 Too Many Requests is a warning (the instance is up but
//     shedding load), headers are the check's, a Host header sets the request's
//     host, and keep-alives are off: a check opens one connection and closes it,
//     it never holds connections open between attempts.
//   - Like Envoy, redirects are not followed: a 3xx is judged by its own status
//     (the default 200-399 passes it, as Kubernetes' httpGet probes do). Consul
//     follows redirects unless disable_redirects is set.
//   - Like Envoy, the whole response must arrive within the timeout: a body
//     that fails or stalls is critical. Consul judges by the status alone and
//     ignores a body read error.
//   - The body is read up to MaxOutput bytes and the rest is not
//     waited for; Consul keeps the last 4 KiB, Sluice the first, which is where
//     a health page says what is wrong.
//   - No proxy from the environment: a check goes straight to the Endpoint.
func (a *attempt) checkHTTP(h *HTTP) Result {
	if !strings.HasPrefix(h.Path, "/") {
		// Without the slash the path would run into the authority
		// ("10.0.0.1:80@elsewhere/"): refuse it rather than guess.
		return critical(fmt.Sprintf("HTTP GET: path %q must start with /", h.Path))
	}
	if len(h.ExpectedStatuses) == 0 {
		return critical("HTTP GET: invalid health check: no expected statuses")
	}
	target := "http://" + a.addr + h.Path
	prefix := "HTTP GET " + target + ": "
	req, err := http.NewRequestWithContext(a.ctx, http.MethodGet, target, nil)
	if err != nil {
		return critical(prefix + err.Error())
	}
	// Sorted so that two spellings of one header ("host", "Host") resolve the
	// same way every time.
	for _, k := range slices.Sorted(maps.Keys(h.Headers)) {
		if http.CanonicalHeaderKey(k) == "Host" {
			req.Host = h.Headers[k]
			continue
		}
		req.Header.Set(k, h.Headers[k])
	}
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", a.userAgent)
	}
	if req.Header.Get("Accept") == "" {
		req.Header.Set("Accept", "text/plain, text/*, */*") // as Consul
	}

	tr := &http.Transport{
		Proxy:              nil, // never HTTP_PROXY and the like
		DialContext:        (&net.Dialer{}).DialContext,
		DisableKeepAlives:  true,
		DisableCompression: true, // the excerpt is what the server sent
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{
		Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	resp, err := client.Do(req)
	if err != nil {
		// url.Error repeats `Get "<url>"`; the prefix already says it.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return critical(prefix + a.failure(err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxOutput))
	if err != nil {
		return critical(fmt.Sprintf("%s%s: reading the body: %s Output: %s", prefix, resp.Status, a.failure(err), body))
	}

	state := Critical
	switch {
	case inRanges(resp.StatusCode, h.ExpectedStatuses):
		state = Passing
	case resp.StatusCode == http.StatusTooManyRequests:
		state = Warning
	}
	return Result{State: state, Output: clip(prefix + resp.Status + " Output: " + string(body))}
}

func inRanges(code int, ranges []StatusRange) bool {
	for _, r := range ranges {
		if r.Start <= code && code <= r.End {
			return true
		}
	}
	return false
}
