package api

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/aipress/aipress/internal/sitefile"
)

// Error codes, stable strings clients can switch on.
const (
	CodeInvalidArgument = "invalid_argument"
	CodeInvalidDomain   = "invalid_domain"
	CodeUnauthenticated = "unauthenticated"
	CodeForbidden       = "forbidden"
	CodeNotFound        = "not_found"
	CodeAlreadyExists   = "already_exists"
	CodeConflict        = "conflict"
	CodeInternal        = "internal"
	CodeUnimplemented   = "unimplemented"
	// CodeExpired (410): a watch's revision is older than the kept
	// tombstones; list everything again.
	CodeExpired = "expired"
	// CodeRateLimited (429): too many sign-in attempts; see Retry-After.
	CodeRateLimited = "rate_limited"
)

// HTTPError is an error that carries the HTTP status and API error code to
// answer with. Msg is shown to the client; Err (the cause) is only logged.
// Modelled on tailscale's tsweb.HTTPError.
type HTTPError struct {
	Status int    // HTTP status code
	Code   string // API error code, e.g. "not_found"
	Msg    string // safe, user-facing message
	Err    error  // cause, logged, never sent; may be nil
	// Details are the positioned problems of an invalid site file
	// (CodeInvalidSiteFile); sent as the error's details. (A pointer:
	// HTTPError stays comparable.)
	Details *[]sitefile.Problem
}

func (e HTTPError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Msg, e.Err)
	}
	return e.Code + ": " + e.Msg
}

func (e HTTPError) Unwrap() error { return e.Err }

// ErrorBody is the JSON body of every error response:
// {"error":{"code":"...","message":"..."}}.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is the inside of ErrorBody.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// Details list the problems of an invalid site file, each with its
	// file, line, column and field path.
	Details []sitefile.Problem `json:"details,omitempty"`
}

func errorf(status int, code, format string, args ...any) HTTPError {
	return HTTPError{Status: status, Code: code, Msg: fmt.Sprintf(format, args...)}
}

func badRequest(format string, args ...any) HTTPError {
	return errorf(http.StatusBadRequest, CodeInvalidArgument, format, args...)
}

func siteNotFound(name string) HTTPError {
	return errorf(http.StatusNotFound, CodeNotFound, "site %q not found", name)
}

func internal(err error) HTTPError {
	return HTTPError{Status: http.StatusInternalServerError, Code: CodeInternal, Msg: "internal error", Err: err}
}

// asHTTPError converts any error into an HTTPError; errors that are not
// HTTPErrors become 500 internal.
func asHTTPError(err error) HTTPError {
	var he HTTPError
	if errors.As(err, &he) {
		return he
	}
	return internal(err)
}
