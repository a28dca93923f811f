package apiclient

import (
	"context"
	"net/http"
	"net/url"

	"github.com/aipress/aipress/internal/api"
	"github.com/aipress/aipress/internal/store"
)

// Accounts: organisations, members, invitations, users.

// Re-exported wire types of the account routes.
type (
	CreateOrgRequest     = api.CreateOrgRequest
	UpdateOrgRequest     = api.UpdateOrgRequest
	OrgView              = api.OrgView
	OrgList              = api.OrgList
	Member               = api.Member
	MemberList           = api.MemberList
	CreateInviteRequest  = api.CreateInviteRequest
	CreateInviteResponse = api.CreateInviteResponse
	InviteView           = api.InviteView
	InviteList           = api.InviteList
	CreateUserRequest    = api.CreateUserRequest
	UpdateUserRequest    = api.UpdateUserRequest
	UserView             = api.UserView
	UserList             = api.UserList
)

// OrgListOptions selects a page of GET /v1/orgs.
type OrgListOptions struct {
	Partner  string // only this partner's organisations
	Limit    int
	Continue string
}

func orgPath(name string) string { return "/v1/orgs/" + url.PathEscape(name) }

func userPath(id string) string { return "/v1/users/" + url.PathEscape(id) }

// ListOrgs returns one page of the organisations the caller may see.
func (c *Client) ListOrgs(ctx context.Context, opts OrgListOptions) (*OrgList, error) {
	q := url.Values{}
	pageQuery(q, opts.Limit, opts.Continue)
	if opts.Partner != "" {
		q.Set("partner", opts.Partner)
	}
	var out OrgList
	if err := c.do(ctx, http.MethodGet, withQuery("/v1/orgs", q), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// CreateOrg creates an organisation.
func (c *Client) CreateOrg(ctx context.Context, req CreateOrgRequest) (*store.Org, error) {
	var out store.Org
	if err := c.do(ctx, http.MethodPost, "/v1/orgs", req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetOrg returns the organisation with its plan's usage.
func (c *Client) GetOrg(ctx context.Context, name string) (*OrgView, error) {
	var out OrgView
	if err := c.do(ctx, http.MethodGet, orgPath(name), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// UpdateOrg changes the fields of req that are set.
func (c *Client) UpdateOrg(ctx context.Context, name string, req UpdateOrgRequest) (*OrgView, error) {
	var out OrgView
	if err := c.do(ctx, http.MethodPatch, orgPath(name), req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteOrg deletes an organisation that owns no sites or organisations.
func (c *Client) DeleteOrg(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, orgPath(name), nil, nil)
}

// ListMembers returns the organisation's members.
func (c *Client) ListMembers(ctx context.Context, org string) (*MemberList, error) {
	var out MemberList
	if err := c.do(ctx, http.MethodGet, orgPath(org)+"/members", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// SetMember sets a member's role (platform admins may add any user).
func (c *Client) SetMember(ctx context.Context, org, userID string, role store.OrgRole) (*store.Membership, error) {
	var out store.Membership
	err := c.do(ctx, http.MethodPut, orgPath(org)+"/members/"+url.PathEscape(userID), api.SetMemberRequest{Role: role}, &out)
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// RemoveMember removes a member from the organisation.
func (c *Client) RemoveMember(ctx context.Context, org, userID string) error {
	return c.do(ctx, http.MethodDelete, orgPath(org)+"/members/"+url.PathEscape(userID), nil, nil)
}

// CreateInvite invites an e-mail address; the response holds the
// invitation's secret, shown only this once.
func (c *Client) CreateInvite(ctx context.Context, org string, req CreateInviteRequest) (*CreateInviteResponse, error) {
	var out CreateInviteResponse
	if err := c.do(ctx, http.MethodPost, orgPath(org)+"/invites", req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListInvites returns the organisation's invitations.
func (c *Client) ListInvites(ctx context.Context, org string) (*InviteList, error) {
	var out InviteList
	if err := c.do(ctx, http.MethodGet, orgPath(org)+"/invites", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteInvite revokes an invitation.
func (c *Client) DeleteInvite(ctx context.Context, org, id string) error {
	return c.do(ctx, http.MethodDelete, orgPath(org)+"/invites/"+url.PathEscape(id), nil, nil)
}

// UserListOptions selects a page of GET /v1/users.
type UserListOptions struct {
	Org      string // only this organisation's members
	Limit    int
	Continue string
}

// ListUsers returns one page of users (platform roles only).
func (c *Client) ListUsers(ctx context.Context, opts UserListOptions) (*UserList, error) {
	q := url.Values{}
	pageQuery(q, opts.Limit, opts.Continue)
	if opts.Org != "" {
		q.Set("org", opts.Org)
	}
	var out UserList
	if err := c.do(ctx, http.MethodGet, withQuery("/v1/users", q), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// CreateUser creates a user (platform admins).
func (c *Client) CreateUser(ctx context.Context, req CreateUserRequest) (*UserView, error) {
	var out UserView
	if err := c.do(ctx, http.MethodPost, "/v1/users", req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetUser returns a user and the memberships the caller may see.
func (c *Client) GetUser(ctx context.Context, id string) (*UserView, error) {
	var out UserView
	if err := c.do(ctx, http.MethodGet, userPath(id), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// UpdateUser changes the fields of req that are set.
func (c *Client) UpdateUser(ctx context.Context, id string, req UpdateUserRequest) (*UserView, error) {
	var out UserView
	if err := c.do(ctx, http.MethodPatch, userPath(id), req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteUser deletes a user with its memberships and tokens.
func (c *Client) DeleteUser(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, userPath(id), nil, nil)
}
