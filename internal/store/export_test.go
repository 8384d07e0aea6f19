package store

// Hubs returns how many watch hubs run, for tests.
func (s *Store) Hubs() int {
	s.hubsMu.Lock()
	defer s.hubsMu.Unlock()
	return len(s.hubs)
}

// HubRing is the hub's ring size, for tests.
const HubRing = hubRing
