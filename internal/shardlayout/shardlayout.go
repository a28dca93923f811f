// Package shardlayout says where a shard keeps each site's resources — its
// Unix user, database, pool and socket, directory and docroot — as a pure
// function of the shard's name, its data directory and the site's UID.
//
// The shard uses it to create them; the control plane checks what a shard
// reports (docroots, pool endpoints) against it; and an edge on the shard's
// machine finds docroots and pool sockets with it. So no path an edge reads
// or a socket it connects to comes from a shard's word (a shard's token is
// trusted only for its own shard). It is its own small package so that the
// API and the edge need not import the shard's servers.
package shardlayout

import (
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"
)

// SiteID is the short identifier of a site on a shard, derived from its UID:
// Unix user, database, database user and pool are all named
// NamePrefix(shard) + SiteID.
func SiteID(uid string) string {
	h := sha256.Sum256([]byte(uid))
	return hex.EncodeToString(h[:6])
}

// LocalName is the name of the original single shard; its sites keep the
// prefix "wp_", so data directories from before per-shard names still work.
const LocalName = "local"

// NamePrefix returns the prefix of the per-site resource names of the shard
// called shard: "wp_" for LocalName, else "w" + 4 hex digits of
// SHA-256(shard) + "_". Unix user names are host-global, so two shards on
// one host — and the two copies of a site moving between them — need
// distinct names; databases and pools live in each shard's own MariaDB
// server and php-fpm master and take the same names for uniformity. A name
// is at most 18 characters (Linux allows 32) and valid for useradd. The
// "p" of "wp_" is no hex digit, so no other shard's prefix equals it.
func NamePrefix(shard string) string {
	if shard == LocalName {
		return "wp_"
	}
	h := sha256.Sum256([]byte(shard))
	return "w" + hex.EncodeToString(h[:2]) + "_"
}

// Names are the per-site resource names.
type Names struct {
	ID, Unix, DB, DBUser, Pool string
	Dir, Docroot               string
	// Socket is the pool's Unix socket.
	Socket string
}

// LogsDir is the site's logs directory (on its volume, the site user's):
// its pool writes its PHP error log there (package sitelog reads it).
func (n Names) LogsDir() string { return filepath.Join(n.Dir, "logs") }

// Layout is one shard's layout.
type Layout struct {
	Name string // the shard's name
	Dir  string // its data directory (absolute)
}

// SitesDir holds one directory per site.
func (l Layout) SitesDir() string { return filepath.Join(l.Dir, "sites") }

// PHPDir is the php-fpm master's directory (pool sockets in run/).
func (l Layout) PHPDir() string { return filepath.Join(l.Dir, "php") }

// OPcacheDir is OPcache's file cache, filled by root from the shard's
// WordPress cores and only read by the pools (package phpfpm, filecache.go).
func (l Layout) OPcacheDir() string { return filepath.Join(l.Dir, "opcache") }

// PoolerDir holds the shard's connection pooler's socket (root's, 0711:
// every site's PHP reaches the socket, nothing may be created beside it).
func (l Layout) PoolerDir() string { return filepath.Join(l.Dir, "run", "pooler") }

// PoolerSocket is the Unix socket of the shard's connection pooler (package
// pooler), the sites' DB_HOST ("localhost:" and it) while the pooler runs.
func (l Layout) PoolerSocket() string { return filepath.Join(l.PoolerDir(), "mysql.sock") }

// CoresDir is where the shard registers its WordPress cores.
func (l Layout) CoresDir() string { return filepath.Join(l.Dir, "cores") }

// ArtefactsDir is the root of the shard's artefact store (package
// artefact): the plugins, themes and cores its sites' docroots link to.
func (l Layout) ArtefactsDir() string { return filepath.Join(l.Dir, "artefacts") }

// DBUsers are both of the site's database accounts: DBUser and
// DBUser+"_b", between which a password rotation alternates (package
// shard, rotate.go). A site's statements are those of both.
func (n Names) DBUsers() []string { return []string{n.DBUser, n.DBUser + "_b"} }

// Site returns the resource names of the site with uid.
func (l Layout) Site(uid string) Names { return l.SiteByID(SiteID(uid)) }

// SiteByID returns the resource names of the site with SiteID id.
func (l Layout) SiteByID(id string) Names {
	n := NamePrefix(l.Name) + id
	dir := filepath.Join(l.SitesDir(), id)
	return Names{ID: id, Unix: n, DB: n, DBUser: n, Pool: n, Dir: dir, Docroot: filepath.Join(dir, "htdocs"),
		Socket: filepath.Join(l.PHPDir(), "run", n+".sock")}
}

// Endpoint is the pool endpoint of the site with uid, as a shard reports it
// ("unix:" and the socket).
func (l Layout) Endpoint(uid string) string { return "unix:" + l.Site(uid).Socket }
