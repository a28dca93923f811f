// Package pitr is point-in-time recovery for a shard's sites: it streams
// the primary MariaDB's binary log as a replication client, turns each
// committed transaction into SQL per site database, ships each site's
// transactions to the shard's backup repository as log segments, and
// replays a site's segments after a snapshot up to a point in time.
//
// # Shipping (Shipper)
//
// New(Config) and Run(ctx): a go-mysql replication.BinlogSyncer (flavor
// mariadb) streams from a GTID position, over TCP (a local server's
// loopback port, or a remote primary's address), as the server's
// replication account (REPLICATION SLAVE, BINLOG MONITOR). The server must
// log ROW events with full images and FULL metadata (column names,
// primary key, signedness, character sets): internal/mariadb configures
// local servers so. SetSites names the site databases (database → site);
// the parts of a transaction in other databases are dropped, a transaction
// writing two sites' databases gives each site its own part.
//
// Every Config.Flush (and on Flush, which a restore calls first: it waits
// until the stream has reached the server's @@gtid_binlog_pos of the call)
// each site's buffered transactions are written as one repository
// snapshot: Site = the site's name, tags Tag ("pitr"), "pitr-site-uid=",
// "pitr-first-gtid=", "pitr-last-gtid=", "pitr-first-time=",
// "pitr-last-time=" (SegmentTags), Meta = SegmentMeta, one stream
// (StreamName) of JSON lines (Txn). Encryption, compression and dedup are
// the repository's. Segments are not backups: the control plane's catalog
// (succeeded backup jobs) never lists them; IsSegment tells them apart.
//
// The position (state.json in Config.StateDir) advances only when a flush
// has shipped everything before it, so a restart (or a crash) streams
// again from there: no transaction is lost, and one already shipped for a
// site (a flush that failed half-way) is not shipped twice. If the server
// no longer has the position (its binary logs were purged) the log starts
// again at the server's position under a new name (Shipper.Log, SegmentMeta.Log;
// a backup records the name beside its dump's position) and SegmentMeta.Since
// records where it began, so Replay refuses to bridge the gap. Flush can also
// write, for given sites, a segment without transactions that records how far
// the log is complete (a coverage mark), for a replay on another shard.
//
// # Translation
//
// Row events become INSERT, UPDATE … SET changed columns WHERE primary key,
// DELETE … WHERE primary key (a table without one: every before-image
// column with <=> and LIMIT 1). Values are exact literals: strings and
// blobs as hex (X'..', with the column's character set as introducer),
// NULL, integers (unsigned ones as such), decimals as their text, FLOAT and
// DOUBLE in their shortest exact form, BIT as a number, ENUM and SET as
// their numbers, temporal values as quoted text (TIMESTAMP in UTC; the
// replay session runs in UTC; zero dates kept). No statement names a
// database, so a log replays into a database of any name (a clone).
// Statements MariaDB logs as text (DDL) are kept when their default
// database is the site's, with SET statements for the session they were
// logged with (timestamp, sql_mode, character sets, time zone); CREATE
// DATABASE IF NOT EXISTS and ALTER DATABASE are skipped. A statement that
// replaces a site database as a whole (DROP or CREATE DATABASE, or one from
// another default database naming a table of it, such as an in-place
// restore's RENAME TABLE swap; account statements excepted) is a barrier in
// that site's log: Replay will not cross it. Commit times have the binary log's
// resolution, one second.
//
// # Replay
//
// Segments lists a site's segments; Replay applies, on a connection logged
// in as the target database's own user (never root: the statements come
// from the site), the transactions after a snapshot's position (exclusive)
// with a commit time at or before until, each row transaction in a
// transaction of its own, stopping at the first commit after until.
// Coverage (Flush's Status, or CoverageOf the segments) says how far the
// log is known complete: Replay fails with ErrNoPosition, ErrGap,
// ErrNotCovered or ErrBarrier rather than restore something else than
// what was asked.
//
// # Why hand-written
//
// The binary log client and event decoding are go-mysql's. MariaDB's own
// mariadb-binlog prints a log as SQL, but as BINLOG '<base64>' statements
// that only a privileged account may run (and that name the original
// database); point-in-time recovery here must replay as the site's own
// user, into a database of another name, one site out of a shared log, so
// the translation to plain SQL is this package's.
package pitr
