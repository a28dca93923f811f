package store

import (
	"fmt"
	"regexp"
)

// Setting is one value of the control plane's own state that every
// replica must see alike — the mesh CA's rotation state (package mtls) —
// written with compare-and-set on Version: a write that lost (another
// replica wrote first) fails with ErrConflict; read again, decide again.
type Setting struct {
	Key     string
	Value   []byte
	Version int64 // 1 after the first write, +1 per write
}

// MaxSettingBytes bounds a setting's value.
const MaxSettingBytes = 64 << 10

var settingKeyRe = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,127}$`)

// ValidSettingKey reports whether key can name a setting.
func ValidSettingKey(key string) bool { return settingKeyRe.MatchString(key) }

// ValidateSetting checks a PutSetting's arguments (ErrInvalid).
func ValidateSetting(key string, value []byte, version int64) error {
	if !settingKeyRe.MatchString(key) {
		return fmt.Errorf("setting key %q (lower-case letters, digits, '.', '_', '-'; at most 128): %w", key, ErrInvalid)
	}
	if len(value) > MaxSettingBytes {
		return fmt.Errorf("setting %q: value larger than %d bytes: %w", key, MaxSettingBytes, ErrInvalid)
	}
	if version < 0 {
		return fmt.Errorf("setting %q: negative version: %w", key, ErrInvalid)
	}
	return nil
}
