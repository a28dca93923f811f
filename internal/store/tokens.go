package store

import "fmt"

// ValidateNewToken checks what CreateToken requires (see Store): a non-empty
// ID and a Hash that is the lowercase hex of a SHA-256 sum (64 digits 0-9,
// a-f), so that a secret is never stored by mistake. Its error wraps
// ErrInvalid and names the call ("create token ..."), so it can be returned
// as is.
func ValidateNewToken(t Token) error {
	switch {
	case t.ID == "":
		return fmt.Errorf("create token: empty id: %w", ErrInvalid)
	case !isSHA256Hex(t.Hash):
		return fmt.Errorf("create token %q: hash is not a lowercase sha-256 hex: %w", t.ID, ErrInvalid)
	}
	return nil
}

// isSHA256Hex reports whether h looks like the lowercase hex of a SHA-256 sum.
func isSHA256Hex(h string) bool {
	if len(h) != 64 {
		return false
	}
	for _, c := range h {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
