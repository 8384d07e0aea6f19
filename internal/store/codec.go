package store

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/sluice/sluice/internal/resource"
)

// encode marshals obj for storage: resourceVersion is the etcd mod revision,
// so it is never part of the value.
func encode(obj resource.Object) ([]byte, error) {
	rv := obj.GetResourceVersion()
	obj.SetResourceVersion("")
	defer obj.SetResourceVersion(rv)
	return json.Marshal(obj)
}

// decode unmarshals a stored value into a new object of kind k.
func decode(k *resource.Kind, data []byte, modRevision int64) (resource.Object, error) {
	obj := k.New()
	if err := json.Unmarshal(data, obj); err != nil {
		return nil, fmt.Errorf("store: decode %s: %w", k, err)
	}
	obj.GetObjectKind().SetGroupVersionKind(k.GVK())
	obj.SetResourceVersion(formatRev(modRevision))
	return obj, nil
}

// topFields splits an object's JSON into its top-level fields, so spec-like
// and status fields can be compared and moved without knowing the kind's Go type.
func topFields(obj resource.Object) (map[string]json.RawMessage, error) {
	data, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		return nil, err
	}
	return fields, nil
}

// withStatus returns a copy of obj whose status is the status of from (none
// when from is nil).
func withStatus(k *resource.Kind, obj, from resource.Object) (resource.Object, error) {
	fields, err := topFields(obj)
	if err != nil {
		return nil, err
	}
	delete(fields, "status")
	if from != nil {
		src, err := topFields(from)
		if err != nil {
			return nil, err
		}
		if st, ok := src["status"]; ok {
			fields["status"] = st
		}
	}
	data, err := json.Marshal(fields)
	if err != nil {
		return nil, err
	}
	out := k.New()
	if err := json.Unmarshal(data, out); err != nil {
		return nil, err
	}
	out.SetResourceVersion(obj.GetResourceVersion())
	return out, nil
}

// specChanged says whether any of the kind's spec fields differ between a and b.
func specChanged(k *resource.Kind, a, b resource.Object) (bool, error) {
	fa, err := topFields(a)
	if err != nil {
		return false, err
	}
	fb, err := topFields(b)
	if err != nil {
		return false, err
	}
	for _, f := range k.SpecFields {
		if !bytes.Equal(fa[f], fb[f]) {
			return true, nil
		}
	}
	return false, nil
}
