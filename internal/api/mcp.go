package api

import (
	"context"
	"net/http"
)

// Caller is who an authenticated request acts as, for handlers outside
// this package that the API hands a request to (Config.MCP).
type Caller struct {
	// TokenID is the ID of the token the request authenticated with.
	TokenID string
	// UserID is the token's user ("" for machine and legacy tokens).
	UserID string
	// Secret is the credential the request presented (the bearer token or
	// the session cookie's secret): calls made on the caller's behalf
	// present it as a bearer token, so they carry exactly its rights.
	Secret string
}

type callerKey struct{}

// CallerFrom returns the caller of a request the API handed on (Config.MCP).
func CallerFrom(ctx context.Context) (Caller, bool) {
	c, ok := ctx.Value(callerKey{}).(Caller)
	return c, ok
}

// serveMCP hands an authenticated GET, POST or DELETE /mcp to Config.MCP
// with the caller in the request's context (CallerFrom). The MCP server
// answers the transport itself (its statuses and event streams); the tools
// it runs call the API again with the caller's own credential, and those
// calls are authorized and audited as any other.
func (s *server) serveMCP(c *call) (response, error) {
	if s.cfg.MCP == nil {
		return response{}, errorf(http.StatusNotImplemented, CodeUnimplemented, "this server runs no MCP endpoint")
	}
	who := Caller{TokenID: c.token.ID, Secret: callerSecret(c.r)}
	if c.who.user != nil {
		who.UserID = c.who.user.ID
	}
	r := c.r.WithContext(context.WithValue(c.r.Context(), callerKey{}, who))
	return response{serve: func(w http.ResponseWriter) { s.cfg.MCP.ServeHTTP(w, r) }}, nil
}
