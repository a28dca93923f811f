package edgenode

import (
	"fmt"
	"net"
	"path/filepath"
	"time"

	"github.com/aipress/aipress/internal/edge/purge"
	"github.com/aipress/aipress/internal/platform/serve"
)

// PurgeSecretFile is the file in the data directory that holds the edge's
// purge secret (32 random bytes, mode 0600); each site's purge key is
// purge.Key(secret, site). During a rotation (`aipress secrets rotate
// purge-secret`) the previous secret is beside it (purge.PrevSuffix).
const PurgeSecretFile = "purge-secret"

// PurgeOverlap is how long the edge accepts keys under the previous purge
// secret after a rotation that nobody finished: far longer than a shard
// takes to rewrite every site's wp-config.php (shard.Config.FullResync).
const PurgeOverlap = time.Hour

// purging is what an edge wires for cache purges: the secret, the
// edge's loopback purge URL that WordPress posts to, and the site keys.
type purging struct {
	ring *purge.Keyring
	url  string
}

func newPurging(dataDir string, edgeAddr net.Addr) (*purging, error) {
	ring, err := purge.OpenKeyring(filepath.Join(dataDir, PurgeSecretFile))
	if err != nil {
		return nil, err
	}
	ring.Window = PurgeOverlap
	return &purging{ring: ring, url: purgeURL(edgeAddr)}, nil
}

func (p *purging) key(site string) string { return p.ring.Key(site) }

// purgeURL is the edge's purge endpoint as PHP on this machine reaches it:
// over loopback when the edge listens on all addresses or on loopback.
// An edge bound to one other address is reached there, but the endpoint
// only serves loopback peers, so purges from WordPress are then refused
// (logged as "edge: purge refused").
func purgeURL(a net.Addr) string {
	return fmt.Sprintf("http://%s%s", serve.ClientAddr(a), purge.Path)
}
