package api

import (
	"errors"

	"github.com/aipress/aipress/internal/store"
)

// ApplyOptions say how a site file is applied.
type ApplyOptions struct {
	// DryRun computes and returns the plan, changing nothing.
	DryRun bool `json:"dry_run,omitempty"`
	// Enforce also brings back what drifted from the spec (a code job
	// even when the spec does not change).
	Enforce bool `json:"enforce,omitempty"`
	// Source says where the file came from, for the audit log ("cli",
	// "git <repo>@<commit>").
	Source string `json:"source,omitempty"`
}

// ApplyResult is the answer of POST /v1/apply: the plan (what changes and
// why) and, unless it was a dry run, what was done.
type ApplyResult struct {
	Site    string             `json:"site"`
	Create  bool               `json:"create"`
	DryRun  bool               `json:"dry_run"`
	Changes []store.CodeChange `json:"changes"`
	// Job is the code job that applies the code changes ("" when none).
	Job string `json:"job,omitempty"`
}

// applySiteFile validates the site file doc (YAML or JSON; errors name
// line and column), computes its plan against the stored site and its
// observed code, and unless opts.DryRun applies it as c's principal:
// creates the site or updates its spec, and starts a code job when code
// changed (or drifted, with opts.Enforce). Shared by POST /v1/apply and git
// sync.
func (s *server) applySiteFile(c *call, doc []byte, opts ApplyOptions) (*ApplyResult, error) {
	return nil, errors.New("apply: not implemented yet")
}
