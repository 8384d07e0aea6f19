package kv

// HubWaiters counts the waits the hub serves, and HubRunning says whether it
// follows etcd, so tests can tell a wait is registered.
func HubWaiters(s *Store) int { return s.hub.waiters() }

func HubRunning(s *Store) bool {
	_, ok := s.hub.resumeFrom()
	return ok
}

// HubSeen is the revision up to which the hub has published every change.
func HubSeen(s *Store) int64 {
	rev, _ := s.hub.resumeFrom()
	return rev
}
