package platform

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"

	"gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"

	"github.com/aipress/aipress/internal/api"
	"github.com/aipress/aipress/internal/apiclient"
	"github.com/aipress/aipress/internal/artefact"
)

// UploadsDir is the folder of the control plane's data directory that
// keeps the artefacts organisations upload (POST /v1/artefacts).
const UploadsDir = "artefacts"

// ShardArtefactsDir is the folder of a shard's data directory that holds
// its artefact store (package artefact): root's, read-only to sites.
const ShardArtefactsDir = "artefacts"

// openUploads opens the control plane's bucket of uploaded artefacts at
// <dataDir>/artefacts.
func openUploads(dataDir string) (*blob.Bucket, error) {
	dir := filepath.Join(dataDir, UploadsDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("uploads: %w", err)
	}
	b, err := fileblob.OpenBucket(dir, nil)
	if err != nil {
		return nil, fmt.Errorf("uploads: %w", err)
	}
	return b, nil
}

// uploadsFunc is how a shard of `aipress up` reads an upload: from the
// control plane's bucket in the same process.
func uploadsFunc(b *blob.Bucket) func(ctx context.Context, sha string) (io.ReadCloser, error) {
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
func openShardArtefacts(dir, catalogueURL string, uploads func(context.Context, string) (io.ReadCloser, error), cfg ShardConfig) (*artefact.Store, error) {
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

// openTransfer opens the transfer store at rawURL (a gocloud.dev/blob
// URL) as the shards open it (internal/shard, transfer.go), to read the
// archives export jobs write there.
func openTransfer(ctx context.Context, rawURL string) (*blob.Bucket, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("transfer store: %w", err)
	}
	if u.Scheme == "file" {
		q := u.Query()
		for k, v := range map[string]string{"create_dir": "1", "dir_file_mode": "0700", "no_tmp_dir": "1", "metadata": "skip"} {
			if !q.Has(k) {
				q.Set(k, v)
			}
		}
		u.RawQuery = q.Encode()
	}
	b, err := blob.OpenBucket(ctx, u.String())
	if err != nil {
		return nil, fmt.Errorf("transfer store: %w", err)
	}
	return b, nil
}
