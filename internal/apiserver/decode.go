package apiserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/sluice/sluice/internal/resource"
)

// readBody reads a request body of at most the configured size and returns it
// as JSON, converting YAML when the content type says so.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.maxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, fmt.Errorf("%w: the body is larger than %d bytes", resource.ErrTooLarge, s.maxBody)
		}
		return nil, fmt.Errorf("%w: reading the body: %v", resource.ErrBadRequest, err)
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if strings.Contains(ct, "yaml") {
		if data, err = yaml.YAMLToJSON(data); err != nil {
			return nil, fmt.Errorf("%w: the body is not valid YAML: %v", resource.ErrBadRequest, err)
		}
	}
	return data, nil
}

// decodeObject decodes a body into an object of kind k. The body's apiVersion
// and kind, when present, must be k's; unknown fields are rejected by name so
// that a typo is not silently dropped.
func decodeObject(k *resource.Kind, data []byte) (resource.Object, error) {
	obj := k.New()
	strict, err := sigsjson.UnmarshalStrict(data, obj)
	if err != nil {
		var syntax *json.SyntaxError
		if errors.As(err, &syntax) || !json.Valid(data) {
			return nil, fmt.Errorf("%w: the body is not a valid JSON object: %v", resource.ErrBadRequest, err)
		}
		return nil, fmt.Errorf("%w: the body does not decode as %s: %v", resource.ErrBadRequest, k, err)
	}
	// New set the kind's apiVersion and kind; a body that names others replaced them.
	if gvk := obj.GetObjectKind().GroupVersionKind(); gvk != k.GVK() {
		return nil, fmt.Errorf("%w: the body's apiVersion %q and kind %q do not match the request path, which is for apiVersion %q kind %q",
			resource.ErrBadRequest, gvk.GroupVersion().String(), gvk.Kind, k.APIVersion(), k.Kind)
	}
	if len(strict) > 0 {
		st := &resource.Status{Code: http.StatusBadRequest, Reason: "BadRequest"}
		msgs := make([]string, 0, len(strict))
		for _, e := range strict {
			msgs = append(msgs, e.Error())
			st.Details = append(st.Details, causeOf(e))
		}
		st.Message = fmt.Sprintf("the body does not decode as %s: %s", k, strings.Join(msgs, "; "))
		return nil, st
	}
	return obj, nil
}

// causeOf turns a strict-decoding error ("unknown field \"spec.prots\"") into a Cause.
func causeOf(err error) resource.Cause {
	msg := err.Error()
	if rest, ok := strings.CutPrefix(msg, "unknown field "); ok {
		return resource.Cause{Field: strings.Trim(rest, `"`), Reason: "unknown field"}
	}
	if rest, ok := strings.CutPrefix(msg, "duplicate field "); ok {
		return resource.Cause{Field: strings.Trim(rest, `"`), Reason: "duplicate field"}
	}
	return resource.Cause{Reason: msg}
}
