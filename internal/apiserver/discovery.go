package apiserver

import "net/http"

// APIResource describes one kind in discovery.
type APIResource struct {
	Group        string   `json:"group"`
	Version      string   `json:"version"`
	Kind         string   `json:"kind"`
	Plural       string   `json:"plural"`
	Singular     string   `json:"singular"`
	ShortNames   []string `json:"shortNames,omitempty"`
	Namespaced   bool     `json:"namespaced"`
	Subresources []string `json:"subresources,omitempty"`
}

// Discovery is the body of GET /apis: every kind the server serves, so
// clients such as the CLI resolve names without a built-in list.
type Discovery struct {
	Resources []APIResource `json:"resources"`
}

func (s *Server) discovery(w http.ResponseWriter, r *http.Request) {
	var d Discovery
	for _, k := range s.store.Kinds().Kinds() {
		res := APIResource{
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
