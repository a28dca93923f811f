package controlplane

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"

	"gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"
)

// UploadsDir is the folder of the control plane's data directory that
// keeps the artefacts organisations upload (POST /v1/artefacts).
const UploadsDir = "artefacts"

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
