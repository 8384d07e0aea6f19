package gateway

// unusable returns the endpoints of c no request may go to now: the ones
// outlier detection ejected and the ones its active health check keeps out
// (failing, or pending while another endpoint is healthy; see
// HealthCheckPolicy). A caller may add to the map it gets: it is the
// caller's own. A cluster with neither ejections nor endpoints kept out
// gets nil, without allocating.
func (g *Gateway) unusable(c *Cluster) map[string]bool {
	ejected := g.outliers.ejected(c)
	if c.health == nil {
		return ejected
	}
	kept := c.health.unusable.Load()
	if kept == nil {
		return ejected
	}
	if ejected == nil {
		ejected = make(map[string]bool, len(*kept))
	}
	for addr := range *kept {
		ejected[addr] = true
	}
	return ejected
}

// noHealthyEndpoints says whether c's active health check finds every
// endpoint failing: the request then gets errNoEndpoints (503 "no healthy
// upstream"), as there is no panic mode. unusable cannot say it alone: the
// balancer picks among skipped endpoints when every one is skipped (so that
// retries still find one). The request path calls it before picking.
func (g *Gateway) noHealthyEndpoints(c *Cluster) bool {
	return c.health != nil && c.health.allFailing.Load()
}
