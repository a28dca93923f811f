package store

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aipress/aipress/internal/site"
)

// WAFRetention bounds the WAF events a store keeps (AppendWAFEvents).
type WAFRetention struct {
	// PerSite keeps only the newest PerSite events of each site the batch
	// touched (0: no bound).
	PerSite int
	// Before drops every event older than Before (zero: none).
	Before time.Time
}

// WAFEventListOptions selects a page of one site's WAF events.
type WAFEventListOptions struct {
	Site, SiteUID string
	Limit         int
	Continue      string
}

// WAFEventList is one page of WAF events, newest first.
type WAFEventList struct {
	Items    []site.WAFEvent `json:"items"`
	Continue string          `json:"continue,omitempty"`
}

// ValidateWAFEvents checks what AppendWAFEvents requires of each event: a
// site and its UID. Its error wraps ErrInvalid.
func ValidateWAFEvents(events []site.WAFEvent) error {
	for i, e := range events {
		if e.Site == "" || e.SiteUID == "" {
			return fmt.Errorf("append WAF events: event %d has no site or site UID: %w", i, ErrInvalid)
		}
	}
	return nil
}

// ValidateWAFEventList checks ListWAFEvents' options and returns the ID the
// page starts below (0: the newest), with an error wrapping ErrInvalid.
func ValidateWAFEventList(opts WAFEventListOptions) (before int64, err error) {
	if opts.Site == "" || opts.SiteUID == "" {
		return 0, fmt.Errorf("list WAF events: site and site UID are required: %w", ErrInvalid)
	}
	return decodeEventContinue(opts.Continue)
}

// EncodeWAFEvent returns the stored JSON of e (without ID and SiteUID, which
// are columns).
func EncodeWAFEvent(e site.WAFEvent) ([]byte, error) {
	e.ID = 0
	b, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("encode WAF event: %w", err)
	}
	return b, nil
}

// DecodeWAFEvent is the inverse of EncodeWAFEvent.
func DecodeWAFEvent(id int64, body []byte) (site.WAFEvent, error) {
	var e site.WAFEvent
	if err := json.Unmarshal(body, &e); err != nil {
		return e, fmt.Errorf("decode WAF event %d: %w", id, err)
	}
	e.ID = id
	return e, nil
}

const eventContinuePrefix = "e1:"

// EncodeWAFEventContinue returns the continue token of a page whose last
// (oldest) event has ID id.
func EncodeWAFEventContinue(id int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(eventContinuePrefix + strconv.FormatInt(id, 10)))
}

func decodeEventContinue(tok string) (int64, error) {
	if tok == "" {
		return 0, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err == nil {
		if n, ok := strings.CutPrefix(string(b), eventContinuePrefix); ok {
			if id, err := strconv.ParseInt(n, 10, 64); err == nil && id > 0 {
				return id, nil
			}
		}
	}
	return 0, fmt.Errorf("invalid continue token: %w", ErrInvalid)
}
