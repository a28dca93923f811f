package shard

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
)

// What a shard reports about a failure — a site's condition messages, a
// move's error, a job's error — is read by viewer tokens, and the errors
// behind it carry the stderr of the installer, mariadb, mariadb-dump,
// useradd, paths and SQL: a password, another tenant's name or a file
// layout has no place there. publicMessage is the one way such an error
// becomes status text: the whole error goes to the shard's log with a
// reference, the status gets a short reason and that reference.

// publicError is an error whose message is written by the shard for the
// site's owner and is safe to show as it is (it names only the site's own
// settings and the shard).
type publicError struct{ msg string }

func (e *publicError) Error() string { return e.msg }

// publicf returns a publicError.
func publicf(format string, args ...any) error {
	return &publicError{msg: fmt.Sprintf(format, args...)}
}

// stepError says which step of work on a site failed; its step is the
// short reason shown, err the detail logged.
type stepError struct {
	step string
	err  error
}

func (e *stepError) Error() string { return e.step + ": " + e.err.Error() }
func (e *stepError) Unwrap() error { return e.err }

// failed wraps a non-nil err as the failure of step ("WordPress
// installation"); nil stays nil.
func failed(step string, err error) error {
	if err == nil {
		return nil
	}
	return &stepError{step: step, err: err}
}

// publicMessage logs err in full on log (with the caller's attributes) and
// returns the text for a status a viewer can read: a publicError's own
// message, else "<step> failed" for the first failed step err names (what,
// when it names none) and a reference to the log line. The reference is a
// hash of the error's text, so a failure that repeats every pass keeps the
// same message (and the status is not rewritten each time).
func (s *Shard) publicMessage(log *slog.Logger, what string, err error) string {
	if log == nil {
		log = s.log
	}
	var pe *publicError
	if errors.As(err, &pe) {
		log.Warn("reported failure", "reason", pe.msg, "err", err)
		return pe.msg
	}
	reason := what
	var se *stepError
	if errors.As(err, &se) {
		reason = se.step
	}
	sum := sha256.Sum256([]byte(err.Error()))
	ref := hex.EncodeToString(sum[:4])
	log.Warn("reported failure", "reason", reason+" failed", "ref", ref, "err", err)
	return fmt.Sprintf("%s failed (details in the log of shard %s, ref %s)", reason, s.cfg.Name, ref)
}
