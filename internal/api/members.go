package api

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/aipress/aipress/internal/store"
)

// Members and invitations of an organisation.

// Member is a membership with the user's e-mail and name
// (GET /v1/orgs/{org}/members).
type Member struct {
	store.Membership
	Email string `json:"email"`
	Name  string `json:"name,omitempty"`
}

// MemberList is the body of GET /v1/orgs/{org}/members.
type MemberList struct {
	Items []Member `json:"items"`
}

// SetMemberRequest is the body of PUT /v1/orgs/{org}/members/{user}.
type SetMemberRequest struct {
	Role store.OrgRole `json:"role"`
}

// CreateInviteRequest is the body of POST /v1/orgs/{org}/invites.
type CreateInviteRequest struct {
	Email string        `json:"email"`
	Role  store.OrgRole `json:"role"`
}

// InviteView is an invitation as the API shows it, with its state:
// pending, accepted or expired.
type InviteView struct {
	store.Invite
	State string `json:"state"`
}

// CreateInviteResponse is the 201 body of POST /v1/orgs/{org}/invites: the
// invitation, whose secret link (<base URL>/invite#<token>: the secret
// rides in the fragment, which browsers do not send to servers or in
// Referer) is mailed to the invited address only. It is never shown to
// the inviter: holding it proves the mailbox, which is what lets its
// holder make an account for that address.
type CreateInviteResponse struct {
	InviteView
	// SentTo is the address the link was mailed to.
	SentTo string `json:"sent_to"`
}

// InviteList is the body of GET /v1/orgs/{org}/invites.
type InviteList struct {
	Items []InviteView `json:"items"`
}

// InviteLifetime is how long an invitation can be accepted.
const InviteLifetime = 7 * 24 * time.Hour

// InvitePrefix starts every invitation secret (API tokens start with
// store.TokenPrefix), so that the two are not mistaken for each other.
const InvitePrefix = "inv_"

func (s *server) listMembers(c *call) (response, error) {
	org := orgName(c)
	ctx := c.r.Context()
	if _, err := s.loadOrg(ctx, org); err != nil {
		return response{}, err
	}
	ms, err := s.cfg.Store.ListMemberships(ctx, store.MembershipFilter{Org: org})
	if err != nil {
		return response{}, internal(fmt.Errorf("list members of %q: %w", org, err))
	}
	out := MemberList{Items: []Member{}}
	for _, m := range ms {
		u, err := s.cfg.Store.GetUser(ctx, m.UserID)
		if errors.Is(err, store.ErrNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return response{}, internal(fmt.Errorf("get user %q: %w", m.UserID, err))
		}
		out.Items = append(out.Items, Member{Membership: m, Email: u.Email, Name: u.Name})
	}
	return response{status: http.StatusOK, body: out}, nil
}

// owners returns the user IDs of org's owners.
func (s *server) owners(c *call, org string) ([]string, error) {
	ms, err := s.cfg.Store.ListMemberships(c.r.Context(), store.MembershipFilter{Org: org})
	if err != nil {
		return nil, internal(fmt.Errorf("list members of %q: %w", org, err))
	}
	var out []string
	for _, m := range ms {
		if m.Role == store.OrgOwner {
			out = append(out, m.UserID)
		}
	}
	return out, nil
}

// membership returns userID's membership of org, or nil.
func (s *server) membership(c *call, org, userID string) (*store.Membership, error) {
	ms, err := s.cfg.Store.ListMemberships(c.r.Context(), store.MembershipFilter{Org: org, UserID: userID})
	if err != nil {
		return nil, internal(fmt.Errorf("get membership %s/%s: %w", org, userID, err))
	}
	for i := range ms {
		if ms[i].Org == org && ms[i].UserID == userID {
			return &ms[i], nil
		}
	}
	return nil, nil
}

// keepAnOwner refuses a change that would leave org without an owner:
// userID, currently m, stops being an owner.
func (s *server) keepAnOwner(c *call, org string, m *store.Membership) error {
	if m == nil || m.Role != store.OrgOwner {
		return nil
	}
	owners, err := s.owners(c, org)
	if err != nil {
		return err
	}
	if len(owners) <= 1 {
		return conflict("user %s is the last owner of organisation %q; make another member owner first", m.UserID, org)
	}
	return nil
}

func memberNotFound(org, user string) error {
	return errorf(http.StatusNotFound, CodeNotFound, "user %q is not a member of organisation %q", user, org)
}

// setMember sets a member's role. Owners change the roles of members (new
// people join by invitation); platform admins may also add any user.
func (s *server) setMember(c *call) (response, error) {
	org := orgName(c)
	userID := c.r.PathValue("user")
	c.target = org + "/" + userID
	var req SetMemberRequest
	if err := decodeJSON(c.r, &req); err != nil {
		return response{}, err
	}
	if !store.ValidOrgRole(req.Role) {
		return response{}, badRequest("role must be owner, developer, viewer or billing, got %q", req.Role)
	}
	ctx := c.r.Context()
	if _, err := s.loadOrg(ctx, org); err != nil {
		return response{}, err
	}
	m, err := s.membership(c, org, userID)
	if err != nil {
		return response{}, err
	}
	if m == nil && !c.who.platformCan(permPlatformAdm) {
		return response{}, memberNotFound(org, userID)
	}
	if m != nil && m.Role == req.Role {
		return response{status: http.StatusOK, body: m, unchanged: true}, nil
	}
	if err := s.keepAnOwner(c, org, m); err != nil {
		return response{}, err
	}
	next := store.Membership{Org: org, UserID: userID, Role: req.Role, CreatedAt: s.cfg.Clock().UTC()}
	if m != nil {
		next.CreatedAt = m.CreatedAt
	}
	err = s.cfg.Store.PutMembership(ctx, next)
	if errors.Is(err, store.ErrNotFound) {
		return response{}, errorf(http.StatusNotFound, CodeNotFound, "user %q not found", userID)
	}
	if err != nil {
		return response{}, internal(fmt.Errorf("put membership %s/%s: %w", org, userID, err))
	}
	c.detail = "role " + string(req.Role)
	if m != nil {
		c.detail = "role " + string(m.Role) + " → " + string(req.Role)
	}
	return response{status: http.StatusOK, body: next}, nil
}

// removeMember removes a member: owners remove anyone, a member itself;
// never the last owner.
func (s *server) removeMember(c *call) (response, error) {
	org := orgName(c)
	userID := c.r.PathValue("user")
	c.target = org + "/" + userID
	p := c.who
	self := p.user != nil && p.user.ID == userID && p.orgs[org] != ""
	if !self {
		if err := c.allow(org, orgNotFound(org)); err != nil {
			return response{}, err
		}
	}
	c.org = org
	if _, err := s.loadOrg(c.r.Context(), org); err != nil {
		return response{}, err
	}
	m, err := s.membership(c, org, userID)
	if err != nil {
		return response{}, err
	}
	if m == nil {
		return response{}, memberNotFound(org, userID)
	}
	if err := s.keepAnOwner(c, org, m); err != nil {
		return response{}, err
	}
	err = s.cfg.Store.DeleteMembership(c.r.Context(), org, userID)
	if errors.Is(err, store.ErrNotFound) {
		return response{}, memberNotFound(org, userID)
	}
	if err != nil {
		return response{}, internal(fmt.Errorf("delete membership %s/%s: %w", org, userID, err))
	}
	c.detail = "was " + string(m.Role)
	if self {
		c.detail += " (left)"
	}
	return response{status: http.StatusNoContent}, nil
}

func (s *server) inviteView(inv store.Invite) InviteView {
	state := "pending"
	switch {
	case inv.AcceptedAt != nil:
		state = "accepted"
	case store.Expired(inv.ExpiresAt, s.cfg.Clock()):
		state = "expired"
	}
	return InviteView{Invite: inv, State: state}
}

// createInvite invites an e-mail address to the organisation with a role
// (at most the caller's own there). A new invitation for an address with
// one pending replaces it (the old link stops working), so retrying is
// safe.
func (s *server) createInvite(c *call) (response, error) {
	org := orgName(c)
	var req CreateInviteRequest
	if err := decodeJSON(c.r, &req); err != nil {
		return response{}, err
	}
	email, err := store.NormalizeEmail(req.Email)
	if err != nil {
		return response{}, badRequest("email %q is not an e-mail address (name@example.com)", req.Email)
	}
	if !store.ValidOrgRole(req.Role) {
		return response{}, badRequest("role must be owner, developer, viewer or billing, got %q", req.Role)
	}
	p := c.who
	if !p.platformCan(permPlatformAdm) {
		if _, ok := narrowOrgRole(req.Role, p.orgs[org]); !ok {
			return response{}, errorf(http.StatusForbidden, CodeForbidden,
				"you may not invite a %s to organisation %q (your role there: %q)", req.Role, org, p.orgs[org])
		}
	}
	c.target = org + "/" + email
	ctx := c.r.Context()
	if _, err := s.loadOrg(ctx, org); err != nil {
		return response{}, err
	}
	if u, err := s.cfg.Store.GetUserByEmail(ctx, email); err == nil {
		if m, err := s.membership(c, org, u.ID); err != nil {
			return response{}, err
		} else if m != nil {
			return response{}, conflict("%s is already a member of %q (role %s); change the role with PUT /v1/orgs/%s/members/%s",
				email, org, m.Role, org, u.ID)
		}
	} else if !errors.Is(err, store.ErrNotFound) {
		return response{}, internal(fmt.Errorf("get user by email: %w", err))
	}
	invs, err := s.cfg.Store.ListInvites(ctx, org)
	if err != nil {
		return response{}, internal(fmt.Errorf("list invites of %q: %w", org, err))
	}
	var replaced []string
	for _, inv := range invs {
		if inv.Email == email && s.inviteView(inv).State == "pending" {
			if err := s.cfg.Store.DeleteInvite(ctx, inv.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
				return response{}, internal(fmt.Errorf("replace invite %q: %w", inv.ID, err))
			}
			replaced = append(replaced, inv.ID)
		}
	}
	rnd, err := randomHex(24)
	if err != nil {
		return response{}, internal(err)
	}
	secret := InvitePrefix + rnd
	id, err := randomHex(6)
	if err != nil {
		return response{}, internal(err)
	}
	creator := p.actor()
	if p.user != nil {
		creator = p.user.ID
	}
	now := s.cfg.Clock().UTC()
	inv := store.Invite{ID: "inv-" + id, Org: org, Email: email, Role: req.Role, Hash: store.TokenHash(secret),
		CreatedBy: creator, CreatedAt: now, ExpiresAt: now.Add(InviteLifetime)}
	if err := s.cfg.Store.CreateInvite(ctx, inv); err != nil {
		return response{}, internal(fmt.Errorf("create invite: %w", err))
	}
	inv.Hash = ""
	c.detail = "invite " + inv.ID + " as " + string(req.Role)
	for _, r := range replaced {
		c.detail += ", replaces " + r
	}
	link := s.baseURL(c.r) + "/invite#" + secret
	if err := s.mailer().Send(ctx, Mail{To: email, Subject: "You are invited to " + org + " on AIPress",
		Body: "You are invited to join the organisation " + org + " as " + string(req.Role) + ".\n\nTo accept, open\n\n  " + link +
			"\n\nbefore " + inv.ExpiresAt.Format(time.RFC1123) + " (or POST {\"token\":\"" + secret + "\"} to /v1/invites/accept)."}); err != nil {
		// An invitation nobody received is useless: undo it, so that a
		// retry starts clean.
		_ = s.cfg.Store.DeleteInvite(ctx, inv.ID)
		return response{}, errorf(http.StatusBadGateway, CodeInternal, "the invitation could not be mailed to %s; try again", email)
	}
	return response{status: http.StatusCreated, body: CreateInviteResponse{InviteView: s.inviteView(inv), SentTo: email}}, nil
}

func (s *server) listInvites(c *call) (response, error) {
	org := orgName(c)
	ctx := c.r.Context()
	if _, err := s.loadOrg(ctx, org); err != nil {
		return response{}, err
	}
	invs, err := s.cfg.Store.ListInvites(ctx, org)
	if err != nil {
		return response{}, internal(fmt.Errorf("list invites of %q: %w", org, err))
	}
	out := InviteList{Items: []InviteView{}}
	for _, inv := range invs {
		inv.Hash = ""
		out.Items = append(out.Items, s.inviteView(inv))
	}
	return response{status: http.StatusOK, body: out}, nil
}

func (s *server) deleteInvite(c *call) (response, error) {
	org := orgName(c)
	id := c.r.PathValue("id")
	c.target = org + "/" + id
	ctx := c.r.Context()
	notFound := errorf(http.StatusNotFound, CodeNotFound, "invitation %q not found in organisation %q", id, org)
	invs, err := s.cfg.Store.ListInvites(ctx, org)
	if err != nil {
		return response{}, internal(fmt.Errorf("list invites of %q: %w", org, err))
	}
	found := false
	for _, inv := range invs {
		found = found || inv.ID == id
	}
	if !found {
		return response{}, notFound
	}
	err = s.cfg.Store.DeleteInvite(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return response{}, notFound
	}
	if err != nil {
		return response{}, internal(fmt.Errorf("delete invite %q: %w", id, err))
	}
	return response{status: http.StatusNoContent}, nil
}
