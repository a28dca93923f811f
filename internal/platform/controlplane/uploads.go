package controlplane

import (
	"fmt"
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
