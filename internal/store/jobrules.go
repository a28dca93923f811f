package store

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ValidateNewJob checks what CreateJob requires (see Store): a non-nil job
// with an ID, a Kind and a CreatedAt. Its error wraps ErrInvalid and names
// the call, so it can be returned as is.
func ValidateNewJob(j *Job) error {
	switch {
	case j == nil:
		return fmt.Errorf("create job: nil job: %w", ErrInvalid)
	case j.ID == "":
		return fmt.Errorf("create job: empty id: %w", ErrInvalid)
	case j.Kind == "":
		return fmt.Errorf("create job %q: empty kind: %w", j.ID, ErrInvalid)
	case j.CreatedAt.IsZero():
		return fmt.Errorf("create job %q: zero created_at: %w", j.ID, ErrInvalid)
	}
	return nil
}

// ValidateJobListOptions checks a JobListOptions' continue token; its error
// wraps ErrInvalid.
func ValidateJobListOptions(opts JobListOptions) error {
	_, _, err := DecodeJobContinue(opts.Continue)
	return err
}

// PrepareJobUpdate applies the store's rules for UpdateJob (see Store) to
// next, the value a mutate function made from a copy of before, the stored
// value, as PrepareShardUpdate does for shards: ID, Kind and CreatedAt are
// immutable (ErrInvalid; another location of the same instant is no change),
// ResourceVersion is the store's, and write reports whether anything else
// changed.
func PrepareJobUpdate(before, next *Job) (write bool, err error) {
	switch {
	case next.ID != before.ID:
		return false, fmt.Errorf("id cannot change: %w", ErrInvalid)
	case next.Kind != before.Kind:
		return false, fmt.Errorf("kind cannot change: %w", ErrInvalid)
	case !next.CreatedAt.Equal(before.CreatedAt):
		return false, fmt.Errorf("created_at cannot change: %w", ErrInvalid)
	}
	next.CreatedAt = before.CreatedAt
	next.ResourceVersion = before.ResourceVersion
	same, err := jsonEqual(before, next)
	if err != nil {
		return false, err
	}
	return !same, nil
}

// EncodeJob returns the JSON body of j as implementations store it (the
// whole job; the columns next to it are copies for lookups, and
// ResourceVersion is left out: the column is authoritative).
func EncodeJob(j *Job) ([]byte, error) {
	c := *j
	c.ResourceVersion = 0
	b, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encode job %q: %w", j.ID, err)
	}
	return b, nil
}

// DecodeJob is the inverse of EncodeJob; it sets ResourceVersion from the
// column.
func DecodeJob(id string, rv int64, body []byte) (*Job, error) {
	var j Job
	if err := json.Unmarshal(body, &j); err != nil {
		return nil, fmt.Errorf("decode job %q: %w", id, err)
	}
	j.ID, j.ResourceVersion = id, rv
	return &j, nil
}

// JobCreatedKey is the sort key implementations keep for a job's CreatedAt:
// nanoseconds since the Unix epoch (jobs list newest first by it, then by
// ID).
func JobCreatedKey(t time.Time) int64 { return t.UnixNano() }

// jobContinuePrefix versions the jobs' continue token.
const jobContinuePrefix = "j1:"

// EncodeJobContinue returns the continue token of a page of jobs whose last
// item is last: the next page holds the jobs after it in the order newest
// first (smaller created key, or the same and a smaller ID).
func EncodeJobContinue(last *Job) string {
	raw := jobContinuePrefix + strconv.FormatInt(JobCreatedKey(last.CreatedAt), 10) + ":" + last.ID
	return base64.RawURLEncoding.EncodeToString([]byte(raw))
}

// DecodeJobContinue is the inverse of EncodeJobContinue: ok is false for the
// empty token (the first page); a token EncodeJobContinue cannot have made
// gives an error wrapping ErrInvalid.
func DecodeJobContinue(tok string) (createdKey int64, id string, err error) {
	if tok == "" {
		return 0, "", nil
	}
	invalid := fmt.Errorf("invalid continue token: %w", ErrInvalid)
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || !strings.HasPrefix(string(b), jobContinuePrefix) {
		return 0, "", invalid
	}
	key, id, ok := strings.Cut(string(b[len(jobContinuePrefix):]), ":")
	if !ok || id == "" {
		return 0, "", invalid
	}
	if createdKey, err = strconv.ParseInt(key, 10, 64); err != nil {
		return 0, "", invalid
	}
	return createdKey, id, nil
}
