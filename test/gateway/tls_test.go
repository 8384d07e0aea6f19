package gatewaye2e

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice/sluice/internal/certtest"
	"github.com/sluice/sluice/internal/client"
	"github.com/sluice/sluice/internal/resource"
)

var secrets = client.ResourceOf(resource.SecretKind)

func secretObj(name string, crt, key []byte) map[string]any {
	return map[string]any{
		"apiVersion": "v1",
		"kind":       "Secret",
		"metadata":   map[string]any{"name": name, "namespace": namespace},
		"type":       "kubernetes.io/tls",
		"stringData": map[string]any{"tls.crt": string(crt), "tls.key": string(key)},
	}
}

// tlsGateway is the Gateway with its HTTP listener and, on another port,
// HTTPS listeners for a.example.com and *.wild.example.com.
func tlsGateway(httpPort, httpsPort int) map[string]any {
	gw := gatewayObj(httpPort)
	spec := gw["spec"].(map[string]any)
	https := func(name, host, secret string) map[string]any {
		return map[string]any{"name": name, "port": httpsPort, "protocol": "HTTPS", "hostname": host,
			"tls": map[string]any{"certificateRefs": []any{map[string]any{"name": secret}}}}
	}
	spec["listeners"] = append(spec["listeners"].([]any), https("https-a", "a.example.com", "a-tls"), https("https-wild", "*.wild.example.com", "wild-tls"))
	return gw
}

func leafOf(t *testing.T, crt []byte) []byte {
	t.Helper()
	b, _ := pem.Decode(crt)
	if b == nil {
		t.Fatal("no PEM block")
	}
	if _, err := x509.ParseCertificate(b.Bytes); err != nil {
		t.Fatal(err)
	}
	return b.Bytes
}

// tlsClient trusts nothing but checks which certificate the gateway
// presents; keepAlive false makes every request a new handshake.
func tlsClient(sni string, keepAlive bool) *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{ServerName: sni, InsecureSkipVerify: true},
		ForceAttemptHTTP2: true,
		DisableKeepAlives: !keepAlive,
	}}
}

// TestTLS: HTTPS listeners terminate TLS with the certificates of their
// Secrets, delivered over SDS, chosen by SNI; HTTP/2 by ALPN; a rotated
// Secret serves new handshakes under load, with no failed request, while a
// connection opened before keeps working.
func TestTLS(t *testing.T) {
	e := startEnv(t)
	aCrt, aKey := certtest.KeyPair(t, "a.example.com")
	wCrt, wKey := certtest.KeyPair(t, "*.wild.example.com")
	e.apply(secrets, "a-tls", secretObj("a-tls", aCrt, aKey))
	e.apply(secrets, "wild-tls", secretObj("wild-tls", wCrt, wKey))
	httpsPort := freePort(t)
	e.apply(gateways, gatewayName, tlsGateway(e.port, httpsPort))
	e.apply(httpRoutes, "tls", httpRoute("tls", nil, map[string]any{"backendRefs": []any{backend("echo-a", 1)}}))

	get := func(c *http.Client, host string) (*http.Response, []byte, error) {
		req, err := http.NewRequest("GET", fmt.Sprintf("https://127.0.0.1:%d/tls", httpsPort), nil)
		if err != nil {
			return nil, nil, err
		}
		req.Host = host
		resp, err := c.Do(req)
		if err != nil {
			return nil, nil, err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		return resp, body, err
	}
	for _, tc := range []struct {
		sni, host string
		leaf      []byte
	}{
		{"a.example.com", "a.example.com", leafOf(t, aCrt)},
		{"x.wild.example.com", "x.wild.example.com", leafOf(t, wCrt)},
	} {
		c := tlsClient(tc.sni, true)
		var resp *http.Response
		var body []byte
		e.waitFor("HTTPS for "+tc.sni, 15*time.Second, func() (bool, string) {
			var err error
			resp, body, err = get(c, tc.host)
			if err != nil {
				return false, err.Error()
			}
			return resp.StatusCode == 200, resp.Status
		})
		if got := resp.TLS.PeerCertificates[0].Raw; !bytes.Equal(got, tc.leaf) {
			t.Errorf("SNI %s: the gateway presented %v, want the certificate of its listener", tc.sni, resp.TLS.PeerCertificates[0].DNSNames)
		}
		if resp.Proto != "HTTP/2.0" {
			t.Errorf("SNI %s: %s, want HTTP/2.0 by ALPN", tc.sni, resp.Proto)
		}
		if !strings.Contains(string(body), `"X-Forwarded-Proto":["https"]`) {
			t.Errorf("SNI %s: the upstream did not get X-Forwarded-Proto https: %s", tc.sni, body)
		}
		c.CloseIdleConnections()
	}

	// Rotation under load: new handshakes on every request.
	old := tlsClient("a.example.com", true)
	defer old.CloseIdleConnections()
	if _, _, err := get(old, "a.example.com"); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var ok, failed int
	var errs []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			c := tlsClient("a.example.com", false)
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, _, err := get(c, "a.example.com")
				mu.Lock()
				if err != nil || resp.StatusCode != 200 {
					failed++
					errs = append(errs, fmt.Sprint(err, resp))
				} else {
					ok++
				}
				mu.Unlock()
			}
		})
	}
	newCrt, newKey := certtest.KeyPair(t, "a.example.com")
	e.apply(secrets, "a-tls", secretObj("a-tls", newCrt, newKey))
	rotated := time.Now()
	fresh := tlsClient("a.example.com", false)
	e.waitFor("the rotated certificate served", 10*time.Second, func() (bool, string) {
		resp, _, err := get(fresh, "a.example.com")
		if err != nil {
			return false, err.Error()
		}
		return bytes.Equal(resp.TLS.PeerCertificates[0].Raw, leafOf(t, newCrt)), "old certificate"
	})
	t.Logf("new handshakes got the rotated certificate %v after the write", time.Since(rotated).Round(time.Millisecond))
	time.Sleep(300 * time.Millisecond) // more handshakes on the new certificate
	close(stop)
	wg.Wait()
	t.Logf("rotation under load: %d requests (a handshake each), %d failed", ok+failed, failed)
	if failed > 0 {
		t.Errorf("%d of %d requests failed during the rotation; first: %s", failed, ok+failed, errs[0])
	}
	resp, _, err := get(old, "a.example.com")
	if err != nil {
		t.Fatalf("the connection opened before the rotation: %v", err)
	}
	if !bytes.Equal(resp.TLS.PeerCertificates[0].Raw, leafOf(t, aCrt)) {
		t.Error("the connection opened before the rotation was renegotiated or replaced")
	}
}
