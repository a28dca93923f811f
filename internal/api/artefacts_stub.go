package api

import "context"

// artefactUploaded reports whether an artefact with SHA-256 sha was
// uploaded to org. Stub until uploads land (part A replaces this file with
// internal/api/artefacts.go): no upload exists, so an upload source is
// refused with a clear message.
func (s *server) artefactUploaded(ctx context.Context, org, sha string) (bool, error) {
	return false, nil
}
