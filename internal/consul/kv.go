package consul

import "net/http"

// The Consul KV endpoints, over package kv. This file is a placeholder that
// answers 501 until the KV mapping lands.

func (f *Facade) kvGet(w http.ResponseWriter, r *http.Request) {
	http.Error(w, "not implemented yet", http.StatusNotImplemented)
}

func (f *Facade) kvPut(w http.ResponseWriter, r *http.Request) {
	http.Error(w, "not implemented yet", http.StatusNotImplemented)
}

func (f *Facade) kvDelete(w http.ResponseWriter, r *http.Request) {
	http.Error(w, "not implemented yet", http.StatusNotImplemented)
}
