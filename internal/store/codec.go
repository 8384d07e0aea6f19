package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"

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

// setStatus sets dst's status to a copy of src's, or to the zero status when
// src is nil. Every kind with a status subresource keeps it in a field named
// Status, as Kubernetes types do; kinds without one are left alone.
func setStatus(dst, src resource.Object) {
	d := reflect.ValueOf(dst).Elem().FieldByName("Status")
	if !d.IsValid() {
		return
	}
	if src == nil {
		d.SetZero()
		return
	}
	// A deep copy, so dst shares no memory with src.
	d.Set(reflect.ValueOf(src.DeepCopyObject()).Elem().FieldByName("Status"))
}

// specEqual says whether two stored values have the same spec fields of kind
// k. Both come from encode, so equal fields are equal bytes.
func specEqual(k *resource.Kind, a, b []byte) (bool, error) {
	var fa, fb map[string]json.RawMessage
	if err := json.Unmarshal(a, &fa); err != nil {
		return false, err
	}
	if err := json.Unmarshal(b, &fb); err != nil {
		return false, err
	}
	for _, f := range k.SpecFields {
		if !bytes.Equal(fa[f], fb[f]) {
			return false, nil
		}
	}
	return true, nil
}
