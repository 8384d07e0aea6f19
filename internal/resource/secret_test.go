package resource_test

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sluice/sluice/internal/certtest"
	"github.com/sluice/sluice/internal/resource"
)

func TestSecretValidation(t *testing.T) {
	crt, key := certtest.KeyPair(t, "a.example.com")
	otherCrt, _ := certtest.KeyPair(t, "b.example.com")
	cases := []struct {
		name       string
		typ        corev1.SecretType
		data       map[string][]byte
		stringData map[string]string
		// want is "field: reason substring" for each expected error; empty means valid.
		want []string
	}{
		{"tls ok", corev1.SecretTypeTLS, map[string][]byte{"tls.crt": crt, "tls.key": key}, nil, nil},
		{"tls from stringData", corev1.SecretTypeTLS, nil, map[string]string{"tls.crt": string(crt), "tls.key": string(key)}, nil},
		{"opaque anything", "", map[string][]byte{"password": []byte("x")}, nil, nil},
		{"tls missing both", corev1.SecretTypeTLS, nil, nil, []string{
			"data[tls.crt]: is required for type kubernetes.io/tls", "data[tls.key]: is required for type kubernetes.io/tls"}},
		{"tls cert not pem", corev1.SecretTypeTLS, map[string][]byte{"tls.crt": []byte("hello"), "tls.key": key}, nil, []string{
			"data[tls.crt]: must be a PEM certificate chain"}},
		{"tls key is a cert", corev1.SecretTypeTLS, map[string][]byte{"tls.crt": crt, "tls.key": crt}, nil, []string{
			`data[tls.key]: must be a PEM PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block, found "CERTIFICATE"`}},
		{"tls key of another cert", corev1.SecretTypeTLS, map[string][]byte{"tls.crt": otherCrt, "tls.key": key}, nil, []string{
			"data[tls.key]: does not match the certificate in data[tls.crt]"}},
		{"bad key name", "", map[string][]byte{"a b": nil}, nil, []string{"data[a b]: "}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: "default"},
				Type:       c.typ, Data: c.data, StringData: c.stringData,
			}
			resource.SecretKind.Default(s)
			if s.StringData != nil {
				t.Errorf("stringData was not merged into data: %v", s.StringData)
			}
			errs := resource.SecretKind.Validate(s)
			inv := resource.NewInvalid(resource.SecretKind, "s", errs)
			var got []string
			for _, cause := range inv.Causes() {
				got = append(got, cause.Field+": "+cause.Reason)
			}
			if len(got) != len(c.want) {
				t.Fatalf("errors = %q, want %d like %q", got, len(c.want), c.want)
			}
			for i, w := range c.want {
				if !strings.HasPrefix(got[i], w) {
					t.Errorf("error %d = %q, want one starting %q", i, got[i], w)
				}
			}
			for _, g := range got {
				if strings.Contains(g, "BEGIN") || strings.Contains(g, string(key[40:60])) {
					t.Errorf("an error shows secret data: %q", g)
				}
			}
		})
	}
}

func TestSecretDefaultsKeepStringDataOverData(t *testing.T) {
	s := &corev1.Secret{Data: map[string][]byte{"a": []byte("old"), "b": []byte("kept")}, StringData: map[string]string{"a": "new"}}
	resource.SecretKind.Default(s)
	if string(s.Data["a"]) != "new" || string(s.Data["b"]) != "kept" || s.Type != corev1.SecretTypeOpaque {
		t.Errorf("defaulted = type %q data %q, want Opaque with a=new (stringData wins), b=kept", s.Type, s.Data)
	}
}

func TestTLSKeyPair(t *testing.T) {
	crt, key := certtest.KeyPair(t, "a.example.com")
	s := &corev1.Secret{Type: corev1.SecretTypeTLS, Data: map[string][]byte{"tls.crt": crt, "tls.key": key}}
	if c, k, err := resource.TLSKeyPair(s); err != nil || string(c) != string(crt) || string(k) != string(key) {
		t.Errorf("TLSKeyPair of a valid secret: err %v", err)
	}
	s.Type = corev1.SecretTypeOpaque
	if _, _, err := resource.TLSKeyPair(s); err == nil || !strings.Contains(err.Error(), `type is "Opaque"`) {
		t.Errorf("TLSKeyPair of an Opaque secret: err %v, want one naming the type", err)
	}
}
