package store

import (
	"time"

	"github.com/aipress/aipress/internal/site"
)

// Shard is a shard (a cell: one MariaDB server, one php-fpm master and the
// sites on them) as the control plane knows it. The agent registers it
// (Capacity, Labels, Roots, Provider, AgentVersion), heartbeats it (Usage,
// LastHeartbeat), the operator cordons or drains it, and the control
// plane's leader judges its health (Phase).
type Shard struct {
	Name string `json:"name"`
	// Capacity is how many sites the shard takes; 0 means the default
	// (placement.DefaultCapacity, 50).
	Capacity int `json:"capacity"`
	// Labels such as region, zone, tier; placement constraints match them.
	Labels map[string]string `json:"labels,omitempty"`
	// Provider created the shard: "local" (a process on this machine),
	// "kubernetes", or "" for one that registered on its own.
	Provider string `json:"provider,omitempty"`
	// Roots are the directories the shard's docroots may link into (its
	// shared WordPress core), which an edge serving its static files
	// must allow.
	Roots        []string `json:"roots,omitempty"`
	AgentVersion string   `json:"agent_version,omitempty"`
	// Dir is the shard's data directory on its machine, as registered:
	// where its sites' docroots and pool sockets are (package
	// shardlayout). An edge reads a docroot or connects to a socket only
	// for shards its operator configured as local to it, at its own path.
	Dir string `json:"dir,omitempty"`
	// Gateway is the host:port of the shard's gateway for edges on other
	// machines (mutual TLS); empty: none.
	Gateway string `json:"gateway,omitempty"`
	// Cordoned: the shard keeps its sites but gets no new ones.
	Cordoned bool `json:"cordoned"`
	// Draining: the shard gets no new sites and its sites are moved away.
	Draining bool `json:"draining"`
	// Phase is the control plane's judgement of the shard's health.
	Phase ShardPhase `json:"phase"`
	// PhaseReason says why, for humans (e.g. "no heartbeat for 31s").
	PhaseReason string `json:"phase_reason,omitempty"`
	// ProviderPhase is what the shard's provider observed of the shard's
	// infrastructure (the Kubernetes provider: its StatefulSets' status):
	// Pending, Ready or Degraded; empty when the provider observes
	// nothing (local shards). The control plane's Phase follows it (see
	// package control).
	ProviderPhase ShardPhase `json:"provider_phase,omitempty"`
	// ProviderReason says why, for humans.
	ProviderReason string     `json:"provider_reason,omitempty"`
	LastHeartbeat  *time.Time `json:"last_heartbeat,omitempty"`
	Usage          Usage      `json:"usage"`
	CreatedAt      time.Time  `json:"created_at"`
	// ResourceVersion is the revision of the shard's last UpdateShard or
	// CreateShard (heartbeats do not move it).
	ResourceVersion int64 `json:"resource_version"`
}

// ShardPhase is a shard's health as judged by the control plane.
type ShardPhase string

// Shard phases.
const (
	// ShardPending: created or registered, no heartbeat yet.
	ShardPending ShardPhase = "Pending"
	// ShardReady: heartbeating.
	ShardReady ShardPhase = "Ready"
	// ShardUnhealthy: missed its heartbeats; the edge answers 503 for
	// its sites until it returns.
	ShardUnhealthy ShardPhase = "Unhealthy"
	// ShardDegraded: the provider reports the shard's infrastructure not
	// ready after it had been (e.g. its pod failed its readiness probe);
	// it gets no new sites and the edge answers 503 for its sites.
	ShardDegraded ShardPhase = "Degraded"
)

// Usage is what a shard reports with each heartbeat.
type Usage struct {
	Sites     int   `json:"sites"`
	Serving   int   `json:"serving"`
	DiskBytes int64 `json:"disk_bytes"`
	// MemoryBytes is the resident memory of the shard's servers (MariaDB,
	// php-fpm and its pools).
	MemoryBytes int64 `json:"memory_bytes"`
}

// Tombstone records that a site left a shard at Revision: it was deleted
// (or re-created under another UID), or a move finished or was rolled back
// so that the shard no longer holds it. A watcher of that shard (or of all
// sites, when Shard is "" for a deletion) drops the site.
type Tombstone struct {
	Name     string `json:"name"`
	UID      string `json:"uid"`
	Shard    string `json:"shard"`
	Revision int64  `json:"revision"`
	// Deleted: the site record itself is gone (not only left this shard).
	Deleted bool `json:"deleted"`
}

// ChangeOptions selects a page of changes.
type ChangeOptions struct {
	// Shard restricts the changes to the sites that shard holds
	// (site.Site.Shards) and to its tombstones; shards' own changes are
	// not reported then. Empty: everything.
	Shard string
	// Limit caps the number of sites plus shards returned (default 100,
	// max 1000); tombstones are not counted.
	Limit int
}

// ChangeList is what changed after a revision.
type ChangeList struct {
	// Sites written after the revision, in ResourceVersion order, each in
	// its current state.
	Sites []site.Site `json:"sites"`
	// Shards written after the revision (only without ChangeOptions.Shard),
	// in ResourceVersion order.
	Shards []Shard `json:"shards,omitempty"`
	// Removed lists tombstones after the revision, in Revision order.
	Removed []Tombstone `json:"removed"`
	// Revision is the revision this list brings the watcher to: pass it as
	// since to the next call. It is the store's current revision when More
	// is false.
	Revision int64 `json:"revision"`
	// More: a limit cut the list; call again at once with Revision.
	More bool `json:"more"`
}
