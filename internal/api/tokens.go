package api

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/aipress/aipress/internal/store"
)

// CreateTokenRequest is the body of POST /v1/tokens.
type CreateTokenRequest struct {
	Name string     `json:"name"`
	Role store.Role `json:"role"` // viewer, admin, shard or edge
	// Subject is the shard's name for role shard (required then); other
	// roles have none.
	Subject string `json:"subject,omitempty"`
}

// CreateTokenResponse is the 201 body of POST /v1/tokens: the token's
// record and its secret, shown only here (only its SHA-256 is stored).
type CreateTokenResponse struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Role      store.Role `json:"role"`
	Subject   string     `json:"subject,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	Token     string     `json:"token"`
}

// TokenList is the body of GET /v1/tokens (without secrets or hashes).
type TokenList struct {
	Items []store.Token `json:"items"`
}

func (req *CreateTokenRequest) validate() error {
	if req.Name == "" || len(req.Name) > maxShortString {
		return badRequest("name must be 1 to %d characters", maxShortString)
	}
	switch req.Role {
	case store.RoleShard:
		if !ValidShardName(req.Subject) {
			return badRequest("a shard token needs subject: the shard's name (1-63 lowercase letters, digits or '-'), got %q", req.Subject)
		}
	case store.RoleViewer, store.RoleAdmin, store.RoleEdge:
		if req.Subject != "" {
			return badRequest("only shard tokens have a subject")
		}
	default:
		return badRequest("role must be viewer, admin, shard or edge, got %q", req.Role)
	}
	return nil
}

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random: %w", err)
	}
	return hex.EncodeToString(b), nil
}

func (s *server) createToken(c *call) (response, error) {
	var req CreateTokenRequest
	if err := decodeJSON(c.r, &req); err != nil {
		return response{}, err
	}
	c.target = req.Name
	if err := req.validate(); err != nil {
		return response{}, err
	}
	secret, hash, err := store.NewTokenSecret()
	if err != nil {
		return response{}, internal(err)
	}
	id, err := randomHex(6)
	if err != nil {
		return response{}, internal(err)
	}
	tok := store.Token{ID: string(req.Role) + "-" + id, Name: req.Name, Role: req.Role, Subject: req.Subject,
		Hash: hash, CreatedAt: s.cfg.Clock().UTC()}
	c.target = tok.ID
	if err := s.cfg.Store.CreateToken(c.r.Context(), tok); err != nil {
		return response{}, internal(fmt.Errorf("create token: %w", err))
	}
	return response{status: http.StatusCreated, body: CreateTokenResponse{
		ID: tok.ID, Name: tok.Name, Role: tok.Role, Subject: tok.Subject, CreatedAt: tok.CreatedAt, Token: secret,
	}}, nil
}

func (s *server) listTokens(c *call) (response, error) {
	toks, err := s.cfg.Store.ListTokens(c.r.Context(), store.TokenFilter{})
	if err != nil {
		return response{}, internal(fmt.Errorf("list tokens: %w", err))
	}
	if toks == nil {
		toks = []store.Token{}
	}
	return response{status: http.StatusOK, body: TokenList{Items: toks}}, nil
}

func (s *server) deleteToken(c *call) (response, error) {
	id := c.r.PathValue("id")
	c.target = id
	err := s.cfg.Store.DeleteToken(c.r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return response{}, errorf(http.StatusNotFound, CodeNotFound, "token %q not found", id)
	}
	if err != nil {
		return response{}, internal(fmt.Errorf("delete token %q: %w", id, err))
	}
	return response{status: http.StatusNoContent}, nil
}
