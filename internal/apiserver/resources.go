package apiserver

import (
	"context"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"strconv"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"

	"github.com/sluice/sluice/internal/resource"
	"github.com/sluice/sluice/internal/store"
)

// kindFor resolves the kind a request path names.
func (s *Server) kindFor(r *http.Request) (*resource.Kind, error) {
	group, version, plural := r.PathValue("group"), r.PathValue("version"), r.PathValue("plural")
	k, ok := s.store.Kinds().ByPlural(group, version, plural)
	if !ok {
		gv := version
		if group != "" {
			gv = group + "/" + version
		}
		return nil, fmt.Errorf("%w: no resource %q in %s", resource.ErrNotFound, plural, gv)
	}
	// Secrets are for identities that may write: a read-only token gets
	// 403 on every path (get, list, watch), as Kubernetes' view role does.
	if id := identityOf(r); k.Sensitive && !id.CanWrite() {
		return nil, fmt.Errorf("%w: %s has role %s, which cannot read %s", resource.ErrForbidden, id.Name, id.Role, k.Plural)
	}
	return k, nil
}

func writeOptions(r *http.Request) (store.WriteOptions, error) {
	switch dr := r.URL.Query().Get("dryRun"); dr {
	case "":
		return store.WriteOptions{}, nil
	case "All":
		return store.WriteOptions{DryRun: true}, nil
	default:
		return store.WriteOptions{}, fmt.Errorf("%w: dryRun %q: the only value is All", resource.ErrBadRequest, dr)
	}
}

// objectFromBody reads the body as an object of the path's kind, taking the
// namespace (and name, on paths that hold one) from the path when the body
// leaves them out and refusing a body that names others.
func (s *Server) objectFromBody(w http.ResponseWriter, r *http.Request) (*resource.Kind, resource.Object, error) {
	k, err := s.kindFor(r)
	if err != nil {
		return nil, nil, err
	}
	data, err := s.readBody(w, r)
	if err != nil {
		return nil, nil, err
	}
	obj, err := decodeObject(k, data)
	if err != nil {
		return nil, nil, err
	}
	ns := r.PathValue("namespace")
	switch obj.GetNamespace() {
	case "":
		obj.SetNamespace(ns)
	case ns:
	default:
		return nil, nil, fmt.Errorf("%w: metadata.namespace %q does not match the namespace %q of the request path", resource.ErrBadRequest, obj.GetNamespace(), ns)
	}
	if name := r.PathValue("name"); name != "" {
		switch obj.GetName() {
		case "":
			obj.SetName(name)
		case name:
		default:
			return nil, nil, fmt.Errorf("%w: metadata.name %q does not match the name %q of the request path", resource.ErrBadRequest, obj.GetName(), name)
		}
	}
	return k, obj, nil
}

func (s *Server) get(w http.ResponseWriter, r *http.Request) {
	k, err := s.kindFor(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	obj, err := s.store.Get(r.Context(), k, r.PathValue("namespace"), r.PathValue("name"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusOK, obj)
}

func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	k, err := s.kindFor(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	q := r.URL.Query()
	sel, err := labels.Parse(q.Get("labelSelector"))
	if err != nil {
		s.writeError(w, r, fmt.Errorf("%w: labelSelector: %v", resource.ErrBadRequest, err))
		return
	}
	if isWatchRequest(r) {
		s.watch(w, r, k, sel)
		return
	}
	objs, rev, err := s.store.List(r.Context(), k, r.PathValue("namespace"), sel)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	list, err := k.ListOf(objs, strconv.FormatInt(rev, 10))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusOK, list)
}

// storeWrite is a store operation that writes one object.
type storeWrite func(context.Context, resource.Object, store.WriteOptions) (resource.Object, error)

// writer serves a request whose body is one object to write with op,
// answering code with the stored object.
func (s *Server) writer(code int, op storeWrite) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		opts, err := writeOptions(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		_, obj, err := s.objectFromBody(w, r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		out, err := op(r.Context(), obj, opts)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		s.writeJSON(w, code, out)
	}
}

// ApplyContentType is the PATCH content type of server-side apply, as in
// Kubernetes; the body is a whole object in YAML or JSON.
const ApplyContentType = "application/apply-patch+yaml"

// patch serves server-side apply: create the object or make it match the body.
func (s *Server) patch(w http.ResponseWriter, r *http.Request) {
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != ApplyContentType {
		s.writeJSON(w, http.StatusUnsupportedMediaType, &resource.Status{
			Code: http.StatusUnsupportedMediaType, Reason: "UnsupportedMediaType",
			Message: fmt.Sprintf("PATCH supports only Content-Type %s (server-side apply), not %q", ApplyContentType, ct),
		})
		return
	}
	opts, err := writeOptions(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	_, obj, err := s.objectFromBody(w, r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out, created, err := s.store.Apply(r.Context(), obj, opts)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	code := http.StatusOK
	if created {
		code = http.StatusCreated
	}
	s.writeJSON(w, code, out)
}

// DeleteOptions is the optional body of a DELETE, as in Kubernetes.
type DeleteOptions struct {
	Preconditions *struct {
		ResourceVersion *string    `json:"resourceVersion,omitempty"`
		UID             *types.UID `json:"uid,omitempty"`
	} `json:"preconditions,omitempty"`
}

func (s *Server) delete(w http.ResponseWriter, r *http.Request) {
	k, err := s.kindFor(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	opts, err := writeOptions(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	data, err := s.readBody(w, r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var pre store.Preconditions
	if len(data) > 0 {
		var do DeleteOptions
		if err := json.Unmarshal(data, &do); err != nil {
			s.writeError(w, r, fmt.Errorf("%w: the body is not valid delete options: %v", resource.ErrBadRequest, err))
			return
		}
		if p := do.Preconditions; p != nil {
			if p.ResourceVersion != nil {
				pre.ResourceVersion = *p.ResourceVersion
			}
			if p.UID != nil {
				pre.UID = *p.UID
			}
		}
	}
	out, err := s.store.Delete(r.Context(), k, r.PathValue("namespace"), r.PathValue("name"), pre, opts)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusOK, out)
}
