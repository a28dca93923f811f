package store

import (
	"encoding/json"
	"fmt"
	"maps"

	"github.com/aipress/aipress/internal/site"
)

// PrepareUpdate applies the store's rules for UpdateSite (see Store) to next,
// the value a mutate function made from a copy of before, the stored value.
//
// It fails with an error wrapping ErrInvalid when next changes Name, UID, Org
// or CreatedAt; next must then not be written. Otherwise it sets next's
// Generation and ResourceVersion back to before's (they belong to the
// store), adds one to the Generation when the spec, the labels (nil and
// empty are the same) or the deletion request changed, and reports whether
// anything changed at all, by JSON encoding: write is false when next equals
// before and nothing is to be written. When write is true the caller sets
// next's ResourceVersion to the revision of its write. It fails with a plain
// error only when a value cannot be encoded.
func PrepareUpdate(before, next *site.Site) (write bool, err error) {
	bm, nm := &before.Metadata, &next.Metadata
	switch {
	case nm.Name != bm.Name:
		return false, fmt.Errorf("metadata.name cannot change: %w", ErrInvalid)
	case nm.UID != bm.UID:
		return false, fmt.Errorf("metadata.uid cannot change: %w", ErrInvalid)
	case nm.Org != bm.Org:
		return false, fmt.Errorf("metadata.org cannot change here (SetSiteOrg moves a site): %w", ErrInvalid)
	case !nm.CreatedAt.Equal(bm.CreatedAt):
		return false, fmt.Errorf("metadata.created_at cannot change: %w", ErrInvalid)
	}
	nm.Generation, nm.ResourceVersion = bm.Generation, bm.ResourceVersion

	specChanged, err := generationChange(before, next)
	if err != nil {
		return false, err
	}
	if specChanged {
		nm.Generation++
		return true, nil
	}
	same, err := jsonEqual(before, next)
	if err != nil {
		return false, err
	}
	return !same, nil
}

// generationChange reports whether the change from a to b bumps the
// generation: the spec, the labels or the deletion request changed.
func generationChange(a, b *site.Site) (bool, error) {
	same, err := jsonEqual(a.Spec, b.Spec)
	if err != nil || !same {
		return !same, err
	}
	// nil and empty label maps are the same labels.
	if !maps.Equal(a.Metadata.Labels, b.Metadata.Labels) {
		return true, nil
	}
	da, db := a.Metadata.DeletionRequested, b.Metadata.DeletionRequested
	if (da == nil) != (db == nil) || (da != nil && !da.Equal(*db)) {
		return true, nil
	}
	return false, nil
}

// jsonEqual reports whether a and b have the same JSON encoding.
func jsonEqual(a, b any) (bool, error) {
	ja, err := json.Marshal(a)
	if err != nil {
		return false, err
	}
	jb, err := json.Marshal(b)
	if err != nil {
		return false, err
	}
	return string(ja) == string(jb), nil
}

// ValidateNewSite checks what CreateSite requires of the caller (see Store):
// a non-nil site with Name, UID and CreatedAt set. Its error wraps ErrInvalid
// and names the call ("create site ..."), so it can be returned as is.
func ValidateNewSite(s *site.Site) error {
	if s == nil {
		return fmt.Errorf("create site: nil site: %w", ErrInvalid)
	}
	name := s.Metadata.Name
	switch {
	case name == "":
		return fmt.Errorf("create site: empty name: %w", ErrInvalid)
	case s.Metadata.UID == "":
		return fmt.Errorf("create site %q: empty uid: %w", name, ErrInvalid)
	case s.Metadata.CreatedAt.IsZero():
		return fmt.Errorf("create site %q: zero created_at: %w", name, ErrInvalid)
	}
	return nil
}

// EncodeSite returns the JSON encodings of s's metadata, spec and status, as
// implementations store them.
func EncodeSite(s *site.Site) (metadata, spec, status []byte, err error) {
	if metadata, err = json.Marshal(s.Metadata); err != nil {
		return nil, nil, nil, fmt.Errorf("encode metadata: %w", err)
	}
	if spec, err = json.Marshal(s.Spec); err != nil {
		return nil, nil, nil, fmt.Errorf("encode spec: %w", err)
	}
	if status, err = json.Marshal(s.Status); err != nil {
		return nil, nil, nil, fmt.Errorf("encode status: %w", err)
	}
	return metadata, spec, status, nil
}

// DecodeSite is the inverse of EncodeSite; name (the site's, for errors)
// names the row in its errors. The caller then sets what its columns hold
// authoritatively (name, UID, resource version).
func DecodeSite(name string, metadata, spec, status []byte) (*site.Site, error) {
	var s site.Site
	if err := json.Unmarshal(metadata, &s.Metadata); err != nil {
		return nil, fmt.Errorf("decode metadata of %q: %w", name, err)
	}
	if err := json.Unmarshal(spec, &s.Spec); err != nil {
		return nil, fmt.Errorf("decode spec of %q: %w", name, err)
	}
	if err := json.Unmarshal(status, &s.Status); err != nil {
		return nil, fmt.Errorf("decode status of %q: %w", name, err)
	}
	return &s, nil
}

// MutateError carries a mutate function's own error through a store's
// update code, so that UpdateSiteErr can return it as is. For store
// implementations.
type MutateError struct{ Err error }

func (e MutateError) Error() string { return e.Err.Error() }
func (e MutateError) Unwrap() error { return e.Err }

// UpdateSiteErr is what UpdateSite (and UpdateSites for each site) returns
// for the site called name: nil when both are nil; mutate's own error as
// is when siteErr is a MutateError and the transaction failed with nothing
// else; otherwise the error (err, else siteErr) wrapped with the name. For
// store implementations.
func UpdateSiteErr(name string, siteErr, err error) error {
	if err == nil {
		err = siteErr
	}
	if err == nil {
		return nil
	}
	if me, ok := siteErr.(MutateError); ok && err == siteErr { //nolint:errorlint // identity: the transaction failed with this error alone
		return me.Err
	}
	return fmt.Errorf("update site %q: %w", name, err)
}
