package gateway

import (
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/http/pprof"
	"slices"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/protobuf/encoding/protojson"
)

// adminHandler serves /ready, /stats, /config_dump and Go's profiles under
// /debug/pprof/ (the admin address is loopback unless the operator says
// otherwise, as for Envoy's /cpuprofiler).
func (g *Gateway) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, _ *http.Request) {
		select {
		case <-g.ready:
			io.WriteString(w, "ready\n")
		default:
			http.Error(w, "no complete config yet", http.StatusServiceUnavailable)
		}
	})
	mux.Handle("GET /stats", promhttp.HandlerFor(g.metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /config_dump", g.configDump)
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	return mux
}

// ConfigDump is the JSON of /config_dump.
type ConfigDump struct {
	Node      string                                `json:"node"`
	Gateway   string                                `json:"gateway"`
	Complete  bool                                  `json:"complete"`
	Versions  map[string]string                     `json:"versions"`
	Resources map[string]map[string]json.RawMessage `json:"resources"`
	Listeners map[int]string                        `json:"listeners"`
}

func (g *Gateway) configDump(w http.ResponseWriter, _ *http.Request) {
	dump := ConfigDump{Node: g.opts.NodeID, Gateway: g.opts.Gateway, Versions: map[string]string{},
		Resources: map[string]map[string]json.RawMessage{}, Listeners: g.listeners.addrs()}
	if cfg := g.cfg.Load(); cfg != nil {
		dump.Complete = cfg.Complete
		for t, v := range cfg.Versions {
			dump.Versions[typeNames[t]] = v
		}
		for t, byName := range cfg.Resources {
			out := map[string]json.RawMessage{}
			for _, name := range slices.Sorted(maps.Keys(byName)) {
				data, err := protojson.Marshal(byName[name])
				if err != nil {
					http.Error(w, err.Error(), http.StatusInternalServerError)
					return
				}
				out[name] = data
			}
			dump.Resources[typeNames[t]] = out
		}
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(dump)
}
