package shardagent

import (
	"context"
	"fmt"
	"io"
	"path/filepath"

	"gocloud.dev/blob"

	"github.com/aipress/aipress/internal/api"
	"github.com/aipress/aipress/internal/apiclient"
	"github.com/aipress/aipress/internal/artefact"
)

// ShardArtefactsDir is the folder of a shard's data directory that holds
// its artefact store (package artefact): root's, read-only to sites.
const ShardArtefactsDir = "artefacts"

// BucketUploads is how a shard in the control plane's process (`aipress
// up`) reads an upload: from the control plane's bucket.
func BucketUploads(b *blob.Bucket) func(ctx context.Context, sha string) (io.ReadCloser, error) {
	if b == nil {
		return nil
	}
	return func(ctx context.Context, sha string) (io.ReadCloser, error) { return api.OpenUpload(ctx, b, sha) }
}

// agentUploads is how a separate `aipress shard` reads an upload: through
// the API with its shard token (GET /v1/agent/artefacts/{sha256}).
func agentUploads(c *apiclient.Client) func(ctx context.Context, sha string) (io.ReadCloser, error) {
	return func(ctx context.Context, sha string) (io.ReadCloser, error) {
		rc, err := c.AgentArtefact(ctx, sha)
		if apiclient.IsNotFound(err) {
			return nil, fmt.Errorf("%w: %w", err, artefact.ErrNotFound)
		}
		return rc, err
	}
}

// openShardArtefacts opens a shard's artefact store at <dir>/artefacts,
// fetching from the catalogue at catalogueURL (default wordpress.org's)
// and uploads through uploads.
func openShardArtefacts(dir, catalogueURL string, uploads func(context.Context, string) (io.ReadCloser, error), cfg Config) (*artefact.Store, error) {
	if catalogueURL == "" {
		catalogueURL = artefact.DefaultCatalogueURL
	}
	log := cfg.Logger
	if log != nil {
		log = log.With("component", "artefacts")
	}
	s, err := artefact.Open(artefact.Config{Dir: filepath.Join(dir, ShardArtefactsDir),
		Catalogue: &artefact.Catalogue{API: catalogueURL}, Uploads: uploads, Logger: log,
		AllowPrivateNetworks: cfg.AllowPrivateFetch})
	if err != nil {
		return nil, fmt.Errorf("shard: %w", err)
	}
	return s, nil
}
