// Package kv is Sluice's config center: a key/value store on etcd with
// compare-and-set, watches of a key or a prefix, blocking waits, and a
// per-key history of versions that survives etcd compaction, with rollback.
// It serves the native HTTP API under /v1/kv/ (see Handler); the
// Consul-compatible facade is built on its Go API elsewhere. It owns the etcd
// key spaces /sluice/kv/ and /sluice/kvhistory/ and nothing else: KV entries
// are not resources, and package store never sees them.
//
// # Model
//
// The value of key K lives at /sluice/kv/K as a small JSON record (the bytes,
// the flags and the write time). An entry's CreateIndex is the etcd create
// revision of that key, its ModifyIndex the etcd mod revision; every read
// also returns the etcd header revision it was made at.
//
// etcd forgets old revisions when it is compacted (the server compacts every
// few minutes), so history is kept explicitly: a put or delete that replaces
// a value copies the replaced version to
//
//	/sluice/kvhistory/K \x00 <its ModifyIndex as %020d>
//
// in the same etcd transaction that writes or deletes K, guarded by a compare
// on K's mod revision, and in that transaction drops the oldest archived
// versions beyond Options.HistoryLimit. Every transaction that touches K's
// history also holds the compare on K, so the history read with K is still
// exact when the transaction commits. A version ended by a delete is marked
// so; the history of a deleted key is kept (it can be rolled back), trimmed by
// the same limit. A put and its archive copy travel in one etcd request: with
// the default 512 KiB value limit that stays below etcd's default 1.5 MiB
// request limit, which a larger Options.MaxValueSize may exceed (the write
// then fails with ErrTooLarge).
//
// A recursive delete runs in transactions of a few dozen keys each (etcd
// bounds the operations of one transaction), so it is atomic per batch, not
// as a whole; each batch archives what it deletes.
//
// # Watching and waiting
//
// Watch streams the changes of a key or prefix from an etcd watch of its own,
// resuming after an index; an index etcd has compacted away ends the stream
// with an ERROR event wrapping resource.ErrExpired, after which the caller
// reads again. WaitIndex, for blocking queries, is served by Run: one etcd
// watch of the whole key space, a ring of the latest changed keys and
// revisions, and waiters indexed by key, so a thousand waiters cost a map
// entry each rather than an etcd watch each. A wait that starts before what
// the ring covers, or before Run runs, falls back to an etcd watch of its own.
package kv
