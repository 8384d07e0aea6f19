package gateway

// unusable returns the endpoints of c no request may go to now: the ones
// outlier detection ejected. A caller may add to the map it gets.
func (g *Gateway) unusable(c *Cluster) map[string]bool {
	return g.outliers.ejected(c)
}
