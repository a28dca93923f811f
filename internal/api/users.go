package api

import (
	"cmp"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/aipress/aipress/internal/store"
)

// Users: platform admins manage them; anyone reads and renames itself;
// organisation owners read their members.

// CreateUserRequest is the body of POST /v1/users. The user has no
// password: they set one through a password reset (or sign in with OIDC).
type CreateUserRequest struct {
	Email        string     `json:"email"`
	Name         string     `json:"name,omitempty"`
	PlatformRole store.Role `json:"platform_role,omitempty"` // admin, operator, support or ""
	// Org and Role, both or neither, make the user a member.
	Org  string        `json:"org,omitempty"`
	Role store.OrgRole `json:"role,omitempty"`
}

// UpdateUserRequest is the body of PATCH /v1/users/{id}: the fields that
// are set change. Name: the user itself or an admin; platform_role and
// disabled: platform admins.
type UpdateUserRequest struct {
	Name         *string     `json:"name,omitempty"`
	PlatformRole *store.Role `json:"platform_role,omitempty"`
	Disabled     *bool       `json:"disabled,omitempty"`
}

// UserView is a user with the memberships the caller may see.
type UserView struct {
	store.User
	Memberships []store.Membership `json:"memberships"`
}

// UserList is the body of GET /v1/users.
type UserList = store.UserList

func userNotFound(id string) error {
	return errorf(http.StatusNotFound, CodeNotFound, "user %q not found", id)
}

func (s *server) listUsers(c *call) (response, error) {
	limit, cont, err := pageParams(c)
	if err != nil {
		return response{}, err
	}
	list, err := s.cfg.Store.ListUsers(c.r.Context(), store.UserListOptions{Org: c.r.URL.Query().Get("org"), Limit: limit, Continue: cont})
	if err != nil {
		if errors.Is(err, store.ErrInvalid) {
			return response{}, badRequest("invalid continue token %q", cont)
		}
		return response{}, internal(fmt.Errorf("list users: %w", err))
	}
	if list.Items == nil {
		list.Items = []store.User{}
	}
	return response{status: http.StatusOK, body: list}, nil
}

func (s *server) createUser(c *call) (response, error) {
	var req CreateUserRequest
	if err := decodeJSON(c.r, &req); err != nil {
		return response{}, err
	}
	email, err := store.NormalizeEmail(req.Email)
	if err != nil {
		return response{}, badRequest("email %q is not an e-mail address (name@example.com)", req.Email)
	}
	c.target = email
	switch {
	case !store.ValidUserPlatformRole(req.PlatformRole):
		return response{}, badRequest("platform_role must be admin, operator, support or empty, got %q", req.PlatformRole)
	case len(req.Name) > 200 || !plainText(req.Name):
		return response{}, badRequest("name: at most 200 characters, no control characters")
	case (req.Org == "") != (req.Role == ""):
		return response{}, badRequest("org and role go together")
	case req.Role != "" && !store.ValidOrgRole(req.Role):
		return response{}, badRequest("role must be owner, developer, viewer or billing, got %q", req.Role)
	}
	ctx := c.r.Context()
	if req.Org != "" {
		if _, err := s.loadOrg(ctx, req.Org); err != nil {
			return response{}, err
		}
		c.org = req.Org
	}
	id, err := randomHex(8)
	if err != nil {
		return response{}, internal(err)
	}
	now := s.cfg.Clock().UTC()
	u := &store.User{ID: "usr-" + id, Email: email, Name: req.Name, PlatformRole: req.PlatformRole, CreatedAt: now}
	err = s.cfg.Store.CreateUser(ctx, u)
	switch {
	case errors.Is(err, store.ErrAlreadyExists):
		return response{}, errorf(http.StatusConflict, CodeAlreadyExists, "a user with email %s already exists", email)
	case errors.Is(err, store.ErrInvalid):
		return response{}, badRequest("%v", err)
	case err != nil:
		return response{}, internal(fmt.Errorf("create user: %w", err))
	}
	c.target = u.ID
	c.detail = email
	view := UserView{User: *u, Memberships: []store.Membership{}}
	if req.Org != "" {
		m := store.Membership{Org: req.Org, UserID: u.ID, Role: req.Role, CreatedAt: now}
		if err := s.cfg.Store.PutMembership(ctx, m); err != nil {
			_ = s.cfg.Store.DeleteUser(ctx, u.ID) // all or nothing: retrying creates it again
			return response{}, internal(fmt.Errorf("add user to %q: %w", req.Org, err))
		}
		view.Memberships = append(view.Memberships, m)
		c.detail += ", " + string(req.Role) + " of " + req.Org
	}
	return response{status: http.StatusCreated, body: view}, nil
}

// findUser returns the user id names and its memberships the caller may
// see, if the caller may see the user: platform readers every user, a
// user itself, members managers (owners) the members of their
// organisations. Else 404.
func (s *server) findUser(c *call, id string) (*store.User, []store.Membership, error) {
	ctx := c.r.Context()
	u, err := s.cfg.Store.GetUser(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, userNotFound(id)
	}
	if err != nil {
		return nil, nil, internal(fmt.Errorf("get user %q: %w", id, err))
	}
	ms, err := s.cfg.Store.ListMemberships(ctx, store.MembershipFilter{UserID: id})
	if err != nil {
		return nil, nil, internal(fmt.Errorf("list memberships of %q: %w", id, err))
	}
	p := c.who
	self := p.user != nil && p.user.ID == id
	visible := []store.Membership{}
	manages := false
	for _, m := range ms {
		if p.platformCan(permPlatformRead) || self || p.sees(m.Org) {
			visible = append(visible, m)
		}
		manages = manages || p.can(permOrgMembers, m.Org)
	}
	if !p.platformCan(permPlatformRead) && !self && !manages {
		return nil, nil, userNotFound(id)
	}
	return u, visible, nil
}

func (s *server) getUser(c *call) (response, error) {
	id := c.r.PathValue("id")
	c.target = id
	u, ms, err := s.findUser(c, id)
	if err != nil {
		return response{}, err
	}
	return response{status: http.StatusOK, body: UserView{User: *u, Memberships: ms}}, nil
}

func (s *server) patchUser(c *call) (response, error) {
	id := c.r.PathValue("id")
	c.target = id
	var req UpdateUserRequest
	if err := decodeJSON(c.r, &req); err != nil {
		return response{}, err
	}
	if _, _, err := s.findUser(c, id); err != nil {
		return response{}, err
	}
	p := c.who
	admin := p.platformCan(permPlatformAdm)
	self := p.user != nil && p.user.ID == id
	deny := func(what string) error {
		return errorf(http.StatusForbidden, CodeForbidden, "token %q (%s) may not change %s of user %q", p.actor(), p.describe(), what, id)
	}
	var changes []string
	if req.Name != nil {
		if !admin && !self {
			return response{}, deny("the name")
		}
		if len(*req.Name) > 200 || !plainText(*req.Name) {
			return response{}, badRequest("name: at most 200 characters, no control characters")
		}
		changes = append(changes, "name")
	}
	if req.PlatformRole != nil {
		if !admin {
			return response{}, deny("the platform role")
		}
		if !store.ValidUserPlatformRole(*req.PlatformRole) {
			return response{}, badRequest("platform_role must be admin, operator, support or empty, got %q", *req.PlatformRole)
		}
		if self && *req.PlatformRole != store.RoleAdmin {
			return response{}, conflict("you may not take your own admin role; another admin can")
		}
		changes = append(changes, "platform_role "+cmp.Or(string(*req.PlatformRole), `""`))
	}
	if req.Disabled != nil {
		if !admin {
			return response{}, deny("whether it is disabled")
		}
		if self && *req.Disabled {
			return response{}, conflict("you may not disable yourself; another admin can")
		}
		changes = append(changes, fmt.Sprintf("disabled %v", *req.Disabled))
	}
	u, err := s.cfg.Store.UpdateUser(c.r.Context(), id, func(u *store.User) error {
		if req.Name != nil {
			u.Name = *req.Name
		}
		if req.PlatformRole != nil {
			u.PlatformRole = *req.PlatformRole
		}
		if req.Disabled != nil {
			u.Disabled = *req.Disabled
		}
		return nil
	})
	switch {
	case errors.Is(err, store.ErrNotFound):
		return response{}, userNotFound(id)
	case errors.Is(err, store.ErrInvalid):
		return response{}, badRequest("%v", err)
	case err != nil:
		return response{}, internal(fmt.Errorf("update user %q: %w", id, err))
	}
	c.detail = strings.Join(changes, ", ")
	_, ms, err := s.findUser(c, id)
	if err != nil {
		return response{}, err
	}
	return response{status: http.StatusOK, body: UserView{User: *u, Memberships: ms}}, nil
}

// deleteUser deletes a user (with its memberships and tokens); not
// oneself, nor the last owner of an organisation.
func (s *server) deleteUser(c *call) (response, error) {
	id := c.r.PathValue("id")
	c.target = id
	if c.who.user != nil && c.who.user.ID == id {
		return response{}, conflict("you may not delete yourself; another admin can")
	}
	ctx := c.r.Context()
	ms, err := s.cfg.Store.ListMemberships(ctx, store.MembershipFilter{UserID: id})
	if err != nil {
		return response{}, internal(fmt.Errorf("list memberships of %q: %w", id, err))
	}
	for _, m := range ms {
		if err := s.keepAnOwner(c, m.Org, &m); err != nil {
			return response{}, err
		}
	}
	err = s.cfg.Store.DeleteUser(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return response{}, userNotFound(id)
	}
	if err != nil {
		return response{}, internal(fmt.Errorf("delete user %q: %w", id, err))
	}
	return response{status: http.StatusNoContent}, nil
}
