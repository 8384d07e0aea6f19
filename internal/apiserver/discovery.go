package apiserver

import (
	"net/http"

	"github.com/sluice/sluice/internal/resource"
)

func (s *Server) discovery(w http.ResponseWriter, r *http.Request) {
	var d resource.Discovery
	for _, k := range s.store.Kinds().Kinds() {
		res := resource.APIResource{
			Group: k.Group, Version: k.Version, Kind: k.Kind,
			Plural: k.Plural, Singular: k.Singular, ShortNames: k.ShortNames,
			Namespaced: true,
		}
		if k.HasStatus {
			res.Subresources = []string{"status"}
		}
		d.Resources = append(d.Resources, res)
	}
	s.writeJSON(w, http.StatusOK, d)
}
