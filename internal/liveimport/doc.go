// Package liveimport pulls a WordPress site from a live server over SSH
// and SFTP into the portable archive that AIPress imports (package
// siteport), and the changes since an earlier pull into a delta archive
// for a re-sync.
//
// Who dials: the CLI, on the operator's machine. The SSH password or key
// and the source's database password never leave that process: they are
// not sent to the API, not stored in the control plane's store or in a
// job record, and not written to disk here (the database password reaches
// the remote mysqldump on its standard input as an option file, never on
// a command line). The archive it makes is streamed (io.Writer) into the
// same POST /v1/imports an archive import uses, so a live import ends in
// the same inspection, sandboxed loader, URL rewriter and "nothing left
// behind on failure" path; only the dump is spooled to a local temporary
// file (a tar entry needs its size first), never the site in memory.
//
// Host keys are always verified: Config.HostKey is a known_hosts file
// (HostKeyFromKnownHosts) or a pinned SHA256 fingerprint
// (HostKeyFingerprint); a mismatch is ErrHostKey, naming the key the
// server offered.
//
// What is pulled: the files of <docroot>/wp-content (recursively) and
// <docroot>/wp-includes/version.php (for the WordPress version; the core
// itself is the platform's). The walk is confined to the docroot as the
// server resolves it (SFTP realpath): a symbolic link is followed only
// when its target resolves inside the docroot, and a link leading out of
// it (to /etc, another site's tree, the Debian package's shared core) is
// not followed but listed in Pulled.Skipped, as are devices, FIFOs and
// sockets.
//
// The database comes either from the remote's own mysqldump or
// mariadb-dump (DB.Mode "mysqldump": the credentials are read from the
// docroot's wp-config.php, or the one above it as WordPress allows) run
// through an SSH exec channel, or from a direct MySQL connection
// (DB.DSN "mysql://user:pass@host:port/db") tunnelled through the same
// SSH connection (a direct-tcpip channel: the host is as the server sees
// it) and dumped by the local mariadb-dump. Both dump in one transaction
// (--single-transaction), with --hex-blob and utf8mb4.
//
// Re-sync: Listing (path, size, mtime of every pulled file) is kept by
// the caller after each pull; Pull with Since set to it writes only the
// files whose size or mtime changed, plus the complete new listing
// (ListingName in the archive), from which the receiving shard applies
// deletions.
package liveimport
