// Package store keeps Sluice's resources in etcd and owns the embedded etcd's
// lifecycle.
//
// Each object is stored as JSON at
//
//	/sluice/resources/<group>/<Kind>/<namespace>/<name>
//
// (group "core" for the core group). An object's resourceVersion is the etcd
// mod revision of its key and is never stored in the value; a list carries the
// etcd header revision; a watch resumes after a revision and answers a
// compacted one with an ERROR event of code 410, after which the client
// relists. Updates are optimistic: the write is an etcd transaction that holds
// only if the key's mod revision is still the one the update was based on.
//
// The store defaults and validates every object it writes, whoever the caller
// is, so the API, the Consul facade and GitOps share one validation path.
// metadata.generation bumps when the spec changes, never for metadata or
// status; status is written only through UpdateStatus, which changes nothing
// else.
//
// Reads go to etcd (linearizable); components that need a cache of objects
// build one with package informer. The store remembers only the last value
// it wrote or saw of recent keys, so that an update based on that value
// skips a read, and watches of a kind share one etcd watch that decodes and
// encodes each change once (see hub).
package store
