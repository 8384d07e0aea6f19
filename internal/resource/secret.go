package resource

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// SecretKind is Kubernetes' Secret (core group, v1), with the upstream Go
// type: TLS material for Gateway listeners. Its data is readable only by
// identities that may write (Sensitive), and reaches gateways over SDS.
var SecretKind = &Kind{
	Version: "v1", Kind: "Secret",
	Plural: "secrets", Singular: "secret",
	Sensitive: true,
	newObject: func() Object { return &corev1.Secret{} },
	newList:   func() runtime.Object { return &corev1.SecretList{} },
	defaults:  func(o Object) { defaultSecret(o.(*corev1.Secret)) },
	validate:  func(o Object) field.ErrorList { return validateSecret(o.(*corev1.Secret)) },
}

// MaxSecretBytes bounds the data of one Secret, as Kubernetes does.
const MaxSecretBytes = 1 << 20

// defaultSecret merges stringData into data (stringData wins), as
// Kubernetes does on write, so stringData is never stored; the type
// defaults to Opaque.
func defaultSecret(s *corev1.Secret) {
	if s.Type == "" {
		s.Type = corev1.SecretTypeOpaque
	}
	if len(s.StringData) > 0 {
		if s.Data == nil {
			s.Data = map[string][]byte{}
		}
		for k, v := range s.StringData {
			s.Data[k] = []byte(v)
		}
	}
	s.StringData = nil
}

func validateSecret(s *corev1.Secret) field.ErrorList {
	var errs field.ErrorList
	dp := field.NewPath("data")
	total := 0
	for k, v := range s.Data {
		for _, msg := range validation.IsConfigMapKey(k) {
			errs = append(errs, field.Invalid(dp.Key(k), k, msg))
		}
		total += len(v)
	}
	if total > MaxSecretBytes {
		errs = append(errs, field.TooLong(dp, "", MaxSecretBytes))
	}
	if s.Type == corev1.SecretTypeTLS {
		errs = append(errs, tlsErrors(s)...)
	}
	return errs
}

// tlsErrors checks the data of a kubernetes.io/tls Secret: tls.crt a PEM
// certificate chain, tls.key a PEM private key, the key the certificate's.
// Errors name the field and never hold its value.
func tlsErrors(s *corev1.Secret) field.ErrorList {
	dp := field.NewPath("data")
	crtPath, keyPath := dp.Key(corev1.TLSCertKey), dp.Key(corev1.TLSPrivateKeyKey)
	crt, hasCrt := s.Data[corev1.TLSCertKey]
	key, hasKey := s.Data[corev1.TLSPrivateKeyKey]
	var errs field.ErrorList
	if !hasCrt || len(crt) == 0 {
		errs = append(errs, field.Required(crtPath, "is required for type "+string(corev1.SecretTypeTLS)))
	} else if err := checkCertChain(crt); err != nil {
		errs = append(errs, field.Invalid(crtPath, field.OmitValueType{}, err.Error()))
	}
	if !hasKey || len(key) == 0 {
		errs = append(errs, field.Required(keyPath, "is required for type "+string(corev1.SecretTypeTLS)))
	} else if err := checkPrivateKey(key); err != nil {
		errs = append(errs, field.Invalid(keyPath, field.OmitValueType{}, err.Error()))
	}
	if len(errs) > 0 {
		return errs
	}
	if _, err := tls.X509KeyPair(crt, key); err != nil {
		errs = append(errs, field.Invalid(keyPath, field.OmitValueType{}, "does not match the certificate in data[tls.crt]: "+keyPairReason(err)))
	}
	return errs
}

// checkCertChain says why data is not a PEM certificate chain.
func checkCertChain(data []byte) error {
	n := 0
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return fmt.Errorf("must hold only PEM CERTIFICATE blocks, found a %q block", block.Type)
		}
		if _, err := x509.ParseCertificate(block.Bytes); err != nil {
			return fmt.Errorf("certificate %d does not parse: %v", n+1, err)
		}
		n++
	}
	if n == 0 {
		return errors.New("must be a PEM certificate chain (no CERTIFICATE block found)")
	}
	return nil
}

// checkPrivateKey says why data is not one PEM private key.
func checkPrivateKey(data []byte) error {
	block, _ := pem.Decode(data)
	if block == nil {
		return errors.New("must be a PEM private key (no PEM block found)")
	}
	switch block.Type {
	case "PRIVATE KEY":
		_, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return fmt.Errorf("PKCS #8 private key does not parse: %v", err)
		}
	case "RSA PRIVATE KEY":
		if _, err := x509.ParsePKCS1PrivateKey(block.Bytes); err != nil {
			return fmt.Errorf("PKCS #1 private key does not parse: %v", err)
		}
	case "EC PRIVATE KEY":
		if _, err := x509.ParseECPrivateKey(block.Bytes); err != nil {
			return fmt.Errorf("EC private key does not parse: %v", err)
		}
	default:
		return fmt.Errorf("must be a PEM PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block, found %q", block.Type)
	}
	return nil
}

// keyPairReason is crypto/tls's reason, without its package prefix.
func keyPairReason(err error) string {
	msg := err.Error()
	const prefix = "tls: "
	if len(msg) > len(prefix) && msg[:len(prefix)] == prefix {
		return msg[len(prefix):]
	}
	return msg
}

// TLSKeyPair returns the certificate chain and private key of a Secret that
// can terminate TLS: of type kubernetes.io/tls, with valid, matching
// tls.crt and tls.key. Otherwise the error says why, without secret bytes.
func TLSKeyPair(s *corev1.Secret) (certChain, privateKey []byte, err error) {
	if s.Type != corev1.SecretTypeTLS {
		return nil, nil, fmt.Errorf("type is %q, not %s", s.Type, corev1.SecretTypeTLS)
	}
	if errs := tlsErrors(s); len(errs) > 0 {
		return nil, nil, fmt.Errorf("%s: %s", errs[0].Field, reasonOf(errs[0]))
	}
	return s.Data[corev1.TLSCertKey], s.Data[corev1.TLSPrivateKeyKey], nil
}
