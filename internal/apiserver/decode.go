package apiserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"k8s.io/apimachinery/pkg/runtime/schema"
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
	var tm struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if err := json.Unmarshal(data, &tm); err != nil {
		return nil, fmt.Errorf("%w: the body is not a valid JSON object: %v", resource.ErrBadRequest, err)
	}
	if tm.APIVersion != "" || tm.Kind != "" {
		gv, err := schema.ParseGroupVersion(tm.APIVersion)
		if err != nil || gv.WithKind(tm.Kind) != k.GVK() {
			return nil, fmt.Errorf("%w: the body's apiVersion %q and kind %q do not match the request path, which is for apiVersion %q kind %q",
				resource.ErrBadRequest, tm.APIVersion, tm.Kind, k.APIVersion(), k.Kind)
		}
	}
	obj := k.New()
	strict, err := sigsjson.UnmarshalStrict(data, obj)
	if err != nil {
		return nil, fmt.Errorf("%w: the body does not decode as %s: %v", resource.ErrBadRequest, k, err)
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
	obj.GetObjectKind().SetGroupVersionKind(k.GVK())
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
