package store

import (
	"encoding/base64"
	"fmt"
	"strings"
)

// Page sizes of ListSites and ListAudit (see Store).
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// PageLimit returns the page size for a requested limit n: DefaultLimit when
// n is zero or negative, else n capped at MaxLimit.
func PageLimit(n int) int {
	if n <= 0 {
		return DefaultLimit
	}
	return min(n, MaxLimit)
}

// continuePrefix versions the continue token's format.
const continuePrefix = "1:"

// EncodeContinue returns the opaque continue token of a page whose last item
// is the site lastName: the next page starts after that name. lastName must
// not be empty.
func EncodeContinue(lastName string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(continuePrefix + lastName))
}

// DecodeContinue returns the name a continue token made by EncodeContinue
// names, and "" for the empty token (the first page). A token that
// EncodeContinue cannot have made (not unpadded URL-safe base64, another
// version, an empty name) gives an error wrapping ErrInvalid.
func DecodeContinue(tok string) (after string, err error) {
	if tok == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || !strings.HasPrefix(string(b), continuePrefix) || len(b) == len(continuePrefix) {
		return "", fmt.Errorf("invalid continue token: %w", ErrInvalid)
	}
	return string(b[len(continuePrefix):]), nil
}
