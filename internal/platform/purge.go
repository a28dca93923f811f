package platform

import (
	"fmt"
	"net"
	"path/filepath"

	"github.com/aipress/aipress/internal/edge/purge"
)

// PurgeSecretFile is the file in the data directory that holds the edge's
// purge secret (32 random bytes, mode 0600); each site's purge key is
// purge.Key(secret, site).
const PurgeSecretFile = "purge-secret"

// purging is what the platform wires for cache purges: the secret, the
// edge's loopback purge URL that WordPress posts to, and the site keys.
type purging struct {
	secret []byte
	url    string
}

func newPurging(dataDir string, edgeAddr net.Addr) (*purging, error) {
	secret, err := purge.LoadOrCreateSecret(filepath.Join(dataDir, PurgeSecretFile))
	if err != nil {
		return nil, err
	}
	return &purging{secret: secret, url: purgeURL(edgeAddr)}, nil
}

func (p *purging) key(site string) string { return purge.Key(p.secret, site) }

// purgeURL is the edge's purge endpoint as PHP on this machine reaches it:
// over loopback when the edge listens on all addresses or on loopback.
// An edge bound to one other address is reached there, but the endpoint
// only serves loopback peers, so purges from WordPress are then refused
// (logged as "edge: purge refused").
func purgeURL(a net.Addr) string {
	return fmt.Sprintf("http://%s%s", clientAddr(a), purge.Path)
}
