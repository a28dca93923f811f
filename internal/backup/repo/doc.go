// Package repo is AIPress's backup repository: a deduplicating, compressed
// and encrypted store of named byte streams (a site's database dump, its
// files archive, ...) on any gocloud.dev/blob bucket (file://, gs://,
// s3://).
//
// Streams are cut into content-defined chunks (github.com/restic/chunker,
// with a polynomial chosen at random once per repository), each chunk is
// named by a keyed hash of its plaintext, so identical data is stored once
// across all snapshots and all sites of the repository. Chunks are
// compressed with zstd (when that helps), encrypted with AES-256-GCM, and
// collected into pack objects of about 16 MiB. Index files map chunk ids to
// their place in the packs; snapshot manifests list a site's streams as
// chunk lists.
//
// (The full layout, crypto and locking design is documented below once
// implemented.)
package repo
