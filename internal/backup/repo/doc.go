// Package repo is AIPress's backup repository: a deduplicating, compressed
// and encrypted store of named byte streams (a site's database dump, its
// files archive, ...) on any gocloud.dev/blob bucket.
//
// # Use
//
//	r, err := repo.OpenURL(ctx, "file:///var/lib/aipress/backups?metadata=skip", kek, true, nil)
//	b, err := r.NewBackup(ctx, repo.BackupOptions{Site: uid, Meta: specJSON})
//	_, err = b.AddStream(ctx, "database.sql", dump)
//	_, err = b.AddStream(ctx, "files.tar", tarStream)
//	snap, err := b.Commit(ctx)
//	rc, err := r.OpenStream(ctx, snap, "database.sql") // streaming, checked
//
// The package links the file:// driver only; a binary that wants gs:// or
// s3:// imports gocloud.dev/blob/gcsblob or s3blob. For file:// buckets,
// "?metadata=skip" avoids a sidecar file and an MD5 pass per object.
//
// # Layout
//
//	config                  sealed JSON: version, repository id, chunker polynomial
//	keys/<32 hex>           JSON: the master key sealed with a key-encryption key
//	data/<2 hex>/<64 hex>   packs, named by the SHA-256 of their bytes
//	index/<64 hex>          sealed index files: chunk id -> pack, offset, length
//	snapshots/<64 hex>      sealed snapshot manifests (zstd JSON)
//	locks/<32 hex>          sealed lock records
//
// Objects other than config, keys and locks are content-addressed: the name
// is the SHA-256 of the stored bytes, checked on every read.
//
// # Chunks, dedup, compression
//
// Streams are cut with content-defined chunking (github.com/restic/chunker:
// 512 KiB to 8 MiB, about 1 MiB on average) under a polynomial drawn at
// random once per repository (so chunk boundaries reveal nothing across
// repositories). A chunk's id is HMAC-SHA256 of its plaintext under a key
// derived from the master key: equal data has one id across all snapshots
// and all sites of the repository and is stored once; ids say nothing about
// content to someone without the key. Each new chunk is compressed with
// zstd (klauspost/compress, SpeedBetterCompression) unless that does not shrink it,
// then encrypted on its own, and chunks are collected into packs of about
// Options.PackSize (16 MiB) so object stores see few, large objects. A
// pack ends with its own sealed header (chunk ids and lengths) so an index
// could be rebuilt from packs alone.
//
// The index in memory costs 16 bytes plus a map entry per chunk (about 70
// bytes all told): a million chunks, i.e. a terabyte of unique data, fit in
// well under 100 MB.
//
// # Crypto
//
// The repository has a random 256-bit master key; from it HKDF-SHA256
// derives an AES-256-GCM key and the chunk-id HMAC key. Everything stored
// is sealed with AES-256-GCM under a random 96-bit nonce (nonce || ciphertext
// || tag): chunks (with their id as additional data, so a chunk cannot be
// served under another id), pack headers, index files, snapshots, config
// and locks (each kind with its own additional data, so one kind cannot be
// passed off as another). With random nonces one key is good for about
// 2^32 messages (billions of chunks, petabytes) before nonce collisions
// become a concern. Restores also recompute each chunk's id and each
// stream's SHA-256.
//
// The master key is stored in keys/ sealed (AES-256-GCM) with a 32-byte
// key-encryption key that the caller (the control plane) keeps, encrypted
// at rest in its own data dir. A repository may have several key files;
// AddKey and RemoveKey rotate the KEK without re-encrypting any data.
//
// # Concurrency and crash safety
//
// A backup uploads packs in parallel (Options.Uploads) while chunks are
// hashed, compressed and encrypted by Options.Workers goroutines per
// stream; several streams may be added at once. Memory is bounded by a
// fixed number of chunk buffers per backup (2×Workers+4, taken from a pool
// the Repo's backups share, so many small streams cost no allocation; a
// stream under 512 KiB (chunker.MinSize), such as a point-in-time log
// segment, is one chunk read into a buffer of its size instead of one of
// 8 MiB) and packs in flight; a pack is written as the sealed chunks it
// collected, without copying them into one buffer. The zstd encoders (5.5
// MiB for inputs up to 1 MiB, 12.5 MiB for larger ones, once used) are
// lent by a pool of the Repo, at most Workers at once across all its
// backups, and are dropped by the garbage collections that follow once no
// backup uses them (codec.go): a burst of backups leaves no encoder memory
// behind. The index
// file and then the snapshot are written only at Commit: a backup killed
// midway leaves packs no index lists, which the next Prune deletes, and no
// snapshot.
//
// Locks (see lock.go) are objects with a time that their holder refreshes
// every LockTTL/3; a lock older than LockTTL is stale (its process died)
// and is removed by whoever finds it. Backups, restores and Verify hold
// shared locks. Prune works in two phases (see Prune): planning and
// repacking under a shared lock while backups go on, then a short final
// phase under an exclusive lock that re-reads the snapshots and index so
// that nothing a backup committed meanwhile is lost. A holder that could
// not refresh its lock within LockTTL has lost it and a backup then refuses
// to commit. Clocks of the processes sharing a repository must agree to
// well within LockTTL (30 minutes by default).
//
// # Why hand-written
//
// restic's repository code is the model here (pack files, index, random
// chunker polynomial, content-defined chunking, lock files), but it lives
// in restic's internal/ packages, which cannot be imported, and it is not
// built on gocloud.dev/blob. kopia's repository package is importable but
// comes with its own storage abstraction, format and a large dependency
// tree; it was not evaluated in depth. The format here is not
// restic-compatible. Only
// the chunker (restic/chunker) and zstd (klauspost/compress) are libraries;
// crypto is the standard library's.
package repo
