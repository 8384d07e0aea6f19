package apiserver_test

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/sluice/sluice/internal/certtest"
	"github.com/sluice/sluice/internal/server"
	"github.com/sluice/sluice/internal/servertest"
)

const secretPath = "/api/v1/namespaces/default/secrets"

// TestSecrets: Secrets are served at the core group's path, stringData is
// merged into data, a bad TLS secret is refused naming the field, and a
// read-only token gets 403 on every read path (get, list, list across
// namespaces, watch) while an admin token reads the data.
func TestSecrets(t *testing.T) {
	srv := servertest.Start(t, server.Config{TokenFile: writeTokens(t)})
	u := srv.URL
	admin := []string{"Authorization", "Bearer admin-token-0123456789"}
	reader := []string{"Authorization", "Bearer read-token-0123456789"}
	crt, key := certtest.KeyPair(t, "a.example.com")
	body, _ := json.Marshal(map[string]any{
		"apiVersion": "v1", "kind": "Secret", "metadata": map[string]any{"name": "a-tls"},
		"type":       "kubernetes.io/tls",
		"data":       map[string][]byte{"tls.crt": crt},
		"stringData": map[string]string{"tls.key": string(key)},
	})
	if r := do(t, "POST", u+secretPath, "application/json", string(body), admin...); r.code != 201 {
		t.Fatalf("create: %d %s", r.code, r.body)
	}

	r := do(t, "GET", u+secretPath+"/a-tls", "", "", admin...)
	if r.code != 200 {
		t.Fatalf("admin get: %d %s", r.code, r.body)
	}
	var got struct {
		Type       string
		Data       map[string]string
		StringData map[string]string
	}
	if err := json.Unmarshal(r.body, &got); err != nil {
		t.Fatal(err)
	}
	if k, _ := base64.StdEncoding.DecodeString(got.Data["tls.key"]); string(k) != string(key) || got.StringData != nil || got.Type != "kubernetes.io/tls" {
		t.Errorf("stored secret: type %q, tls.key merged from stringData %v, stringData %v", got.Type, string(k) == string(key), got.StringData)
	}

	bad := strings.Replace(string(body), base64.StdEncoding.EncodeToString(crt), base64.StdEncoding.EncodeToString([]byte("not a cert")), 1)
	bad = strings.Replace(bad, `"a-tls"`, `"b-tls"`, 1)
	r = do(t, "POST", u+secretPath, "application/json", bad, admin...)
	if r.code != 422 {
		t.Fatalf("invalid tls secret: %d %s, want 422", r.code, r.body)
	}
	if st := r.status(t); len(st.Details) != 1 || st.Details[0].Field != "data[tls.crt]" || !strings.Contains(st.Details[0].Reason, "PEM certificate") {
		t.Errorf("invalid tls secret details = %+v, want data[tls.crt] must be a PEM certificate chain", st.Details)
	}

	for _, c := range []struct{ name, path string }{
		{"get", secretPath + "/a-tls"},
		{"list", secretPath},
		{"list across namespaces", "/api/v1/secrets"},
		{"watch", secretPath + "?watch=true"},
		{"watch across namespaces", "/api/v1/secrets?watch=true&timeoutSeconds=1"},
	} {
		t.Run("read token "+c.name, func(t *testing.T) {
			r := do(t, "GET", u+c.path, "", "", reader...)
			if r.code != 403 || strings.Contains(string(r.body), "tls.") {
				t.Fatalf("status %d, want 403 with no data: %s", r.code, r.body)
			}
		})
	}

	// The admin's watch carries the data.
	req, _ := http.NewRequest("GET", u+secretPath+"?watch=true&timeoutSeconds=1", nil)
	req.Header.Set(admin[0], admin[1])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	if !sc.Scan() || !strings.Contains(sc.Text(), `"ADDED"`) || !strings.Contains(sc.Text(), `"tls.crt"`) {
		t.Errorf("admin watch: first event %q, want ADDED with data", sc.Text())
	}
}
