package apiclient

import (
	"context"
	"errors"
	"net/http"

	"github.com/aipress/aipress/internal/api"
)

// Sign-in wire types.
type (
	LoginRequest   = api.LoginRequest
	LoginResponse  = api.LoginResponse
	DeviceResponse = api.DeviceResponse
)

// HasCode reports whether err is an API error with the given code (e.g.
// api.CodeAuthorizationPending).
func HasCode(err error, code string) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}

// Login signs in with e-mail and password. Set req.Token for an API token
// (a client has no cookie jar for a session).
func (c *Client) Login(ctx context.Context, req LoginRequest) (*LoginResponse, error) {
	var out LoginResponse
	if err := c.do(ctx, http.MethodPost, "/v1/auth/login", req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Logout deletes the client's token (a user's sign-in).
func (c *Client) Logout(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, "/v1/auth/logout", nil, nil)
}

// StartDevice starts a device sign-in; name names the API token it makes.
func (c *Client) StartDevice(ctx context.Context, name string) (*DeviceResponse, error) {
	var out DeviceResponse
	if err := c.do(ctx, http.MethodPost, "/v1/auth/device", api.DeviceRequest{Name: name}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// PollDevice asks once for a device sign-in's token. Until the user
// approves, the error has code api.CodeAuthorizationPending (or
// api.CodeSlowDown: wait longer; api.CodeExpiredToken: start again).
func (c *Client) PollDevice(ctx context.Context, deviceCode string) (*LoginResponse, error) {
	var out LoginResponse
	if err := c.do(ctx, http.MethodPost, "/v1/auth/device/token", api.DeviceTokenRequest{DeviceCode: deviceCode}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ApproveDevice approves a pending device sign-in by its user code, as the
// client's user.
func (c *Client) ApproveDevice(ctx context.Context, userCode string) error {
	return c.do(ctx, http.MethodPost, "/v1/auth/device/approve", api.DeviceApproveRequest{UserCode: userCode}, nil)
}
