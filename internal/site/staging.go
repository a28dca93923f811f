package site

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// Staging sites are the throw-away clones a staged update (a
// store.JobUpdate) tries a change on before it touches the real site. They
// live under a reserved suffix of the .invalid top-level domain (RFC 2606:
// never a real domain, so a staging site's name can neither collide with a
// customer's site nor be mistaken for one); the API refuses to create sites
// there, and the edge never routes them (they answer 503 to visitors; the
// code job's health checks reach them on the shard directly).
const (
	// StagingSuffix ends every staging site's name.
	StagingSuffix = ".staging.invalid"
	// LabelStagingOf names the site a staging site is a copy of.
	LabelStagingOf = "aipress.dev/staging-of"
	// LabelUpdateJob names the update job that owns a staging site (it
	// deletes the site when it ends; an orphan is collected).
	LabelUpdateJob = "aipress.dev/update-job"
)

// StagingName returns the staging site's name for an update job of a site:
// "u" and 8 hex digits derived from the job's ID, then the site's name with
// dots as dashes (truncated to fit one 63-character label), then
// StagingSuffix. The same job always gets the same name, so a resumed
// update finds the staging site it created.
func StagingName(siteName, jobID string) string {
	sum := sha256.Sum256([]byte(jobID))
	label := "u" + hex.EncodeToString(sum[:4]) + "-" + strings.ReplaceAll(siteName, ".", "-")
	if len(label) > 63 {
		label = label[:63]
	}
	label = strings.TrimRight(label, "-")
	return label + StagingSuffix
}

// IsStaging reports whether name is a staging site's (it ends with
// StagingSuffix).
func IsStaging(name string) bool {
	return strings.HasSuffix(strings.TrimSuffix(strings.ToLower(name), "."), StagingSuffix)
}
