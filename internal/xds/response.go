package xds

import (
	"context"
	"errors"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
)

var errFetchUnsupported = errors.New("xds: REST fetch is not served; use ADS")

// response is a ready State-of-the-World response.
type response struct {
	req      *discovery.DiscoveryRequest
	out      *discovery.DiscoveryResponse
	returned map[string]string
}

var _ cache.Response = (*response)(nil)

func (r *response) GetDiscoveryResponse() (*discovery.DiscoveryResponse, error) { return r.out, nil }
func (r *response) GetRequest() *discovery.DiscoveryRequest                     { return r.req }
func (r *response) GetVersion() (string, error)                                 { return r.out.GetVersionInfo(), nil }
func (r *response) GetResponseVersion() string                                  { return r.out.GetVersionInfo() }
func (r *response) GetReturnedResources() map[string]string                     { return r.returned }
func (r *response) GetContext() context.Context                                 { return context.Background() }

// deltaResponse is a ready Delta response.
type deltaResponse struct {
	req  *discovery.DeltaDiscoveryRequest
	out  *discovery.DeltaDiscoveryResponse
	next map[string]string
}

var _ cache.DeltaResponse = (*deltaResponse)(nil)

func (r *deltaResponse) GetDeltaDiscoveryResponse() (*discovery.DeltaDiscoveryResponse, error) {
	return r.out, nil
}
func (r *deltaResponse) GetDeltaRequest() *discovery.DeltaDiscoveryRequest { return r.req }
func (r *deltaResponse) GetSystemVersion() (string, error)                 { return r.out.GetSystemVersionInfo(), nil }
func (r *deltaResponse) GetResponseVersion() string                        { return r.out.GetSystemVersionInfo() }
func (r *deltaResponse) GetNextVersionMap() map[string]string              { return r.next }
func (r *deltaResponse) GetReturnedResources() map[string]string           { return r.next }
func (r *deltaResponse) GetContext() context.Context                       { return context.Background() }
