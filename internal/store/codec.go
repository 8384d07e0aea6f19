package store

import (
	"encoding/json"
	"fmt"
	"reflect"

	"k8s.io/apimachinery/pkg/api/equality"

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

// specEqual says whether a and b have the same desired state: every kind
// keeps it in a field named Spec, as Kubernetes types do. Nil and empty
// collections are equal, as they are once stored as JSON.
func specEqual(a, b resource.Object) bool {
	sa := reflect.ValueOf(a).Elem().FieldByName("Spec")
	sb := reflect.ValueOf(b).Elem().FieldByName("Spec")
	if !sa.IsValid() || !sb.IsValid() {
		return true
	}
	return equality.Semantic.DeepEqual(sa.Interface(), sb.Interface())
}
