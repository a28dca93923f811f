// Package siteport moves WordPress sites in and out of AIPress as portable
// archives.
//
// Export writes a tar.gz that standard tools and other hosts accept:
// wp-content/ (the site's own files), database.sql (a mariadb-dump of the
// site's tables with their table prefix, DEFINER clauses removed) and
// manifest.json (Manifest: format version, domain, URL, WordPress version,
// table prefix, charset, sizes and the SHA-256 of every entry), written
// last because its hashes are those of the bytes streamed before it.
//
// Import reads such an archive, or any tar, tar.gz or zip of a WordPress
// docroot or of a wp-content directory with a SQL dump (plain or gzip)
// inside or beside it: Extract unpacks it entry by entry into a staging
// directory (never the whole archive in memory), refusing entries that
// would land outside it (absolute paths, "..", symlinks or hard links
// that escape, devices), truncated or corrupt compression and archives
// beyond the caller's limits; Locate finds wp-content, the docroot's
// WordPress version and the dump; ScanDump reads the dump once to detect
// its table prefix, the site's old URL (siteurl and home), its db_version
// and character set, refusing a dump without <prefix>options or in a
// character set other than UTF-8. NewDumpFilter is the stream the loader
// gets: DEFINER clauses, CREATE DATABASE/USE statements and trigger or
// routine blocks (DELIMITER …) are removed and reported; everything else
// reaches the database's sandboxed loader unchanged. The shard
// (internal/shard, import.go) puts these together with its loader and the
// URL rewriter (internal/searchreplace).
package siteport
