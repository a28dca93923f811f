package cli

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/aipress/aipress/internal/store"
)

var userIDRE = regexp.MustCompile(`usr-[0-9a-f]{16}`)

// TestOrgUserInviteCommands drives `aipress org|invite|user` against the
// real API in-process, step by step: a partner, an organisation under it,
// users, members, an invitation, updates, and what a customer sees.
func TestOrgUserInviteCommands(t *testing.T) {
	h := newHarness(t)
	const ownerSecret = "owner-session-secret"
	var inviteID string
	steps := []struct {
		name   string
		args   []string
		token  string // default: the admin token
		golden string // compare stdout with testdata/<golden>.golden (user ids masked)
		want   string // stdout contains
		err    string // the command fails with this
		after  func(t *testing.T, out string)
	}{
		{name: "create a partner", args: []string{"org", "create", "resell", "--kind", "partner", "--display-name", "Resell Hosting"},
			want: "organisation resell (partner, plan basic) created\n"},
		{name: "create an organisation under it", args: []string{"org", "create", "acme", "--partner", "resell", "--plan", "business",
			"--display-name", "ACME Inc.", "--primary-color", "#112233", "--support-email", "help@acme.example"},
			want: "organisation acme (customer, plan business) created under partner resell\n"},
		{name: "a bad colour is refused", args: []string{"org", "create", "bad", "--primary-color", "blue"}, err: "#rrggbb"},
		{name: "an owner", args: []string{"user", "create", "owner@acme.example", "--name", "Olga", "--org", "acme", "--role", "owner"},
			want: "created; they set a password"},
		{name: "a developer", args: []string{"user", "create", "dev@acme.example", "--org", "acme", "--role", "developer", "-o", "json"},
			after: func(t *testing.T, out string) {
				var u struct {
					Email       string `json:"email"`
					Memberships []struct{ Org, Role string }
				}
				if err := json.Unmarshal([]byte(out), &u); err != nil || u.Email != "dev@acme.example" || len(u.Memberships) != 1 {
					t.Errorf("user %q (%v)", out, err)
				}
			}},
		{name: "list organisations", args: []string{"org", "list"}, golden: "org_list_table"},
		{name: "an organisation's plan, usage and branding", args: []string{"org", "get", "acme"}, golden: "org_get_table"},
		{name: "as JSON", args: []string{"org", "get", "resell", "-o", "json"}, golden: "org_get_json"},
		{name: "members", args: []string{"org", "member", "list", "acme"}, golden: "member_list_table"},
		{name: "set a role by e-mail", args: []string{"org", "member", "set", "acme", "dev@acme.example", "--role", "viewer"},
			want: "dev@acme.example is viewer of acme\n"},
		{name: "the last owner stays", args: []string{"org", "member", "remove", "acme", "owner@acme.example"}, err: "last owner"},
		{name: "invite", args: []string{"invite", "create", "new@acme.example", "--org", "acme", "--role", "developer"},
			want: "secret link was mailed to new@acme.example"},
		{name: "invitations", args: []string{"invite", "list", "--org", "acme", "-o", "json"},
			after: func(t *testing.T, out string) {
				var l struct {
					Items []struct{ ID, Email, State string }
				}
				if err := json.Unmarshal([]byte(out), &l); err != nil || len(l.Items) != 1 || l.Items[0].State != "pending" {
					t.Fatalf("invites %q (%v)", out, err)
				}
				inviteID = l.Items[0].ID
			}},
		{name: "invitations need --org", args: []string{"invite", "list"}, err: `required flag(s) "org" not set`},
		{name: "update the plan and one colour; the other branding stays",
			args: []string{"org", "update", "acme", "--plan", "basic", "--accent-color", "#445566", "-o", "yaml"},
			after: func(t *testing.T, out string) {
				for _, s := range []string{"plan: basic", "accent_color: '#445566'", "primary_color: '#112233'", "support_email: help@acme.example"} {
					if !strings.Contains(out, s) {
						t.Errorf("no %q in\n%s", s, out)
					}
				}
			}},
		{name: "nothing to update", args: []string{"org", "update", "acme"}, err: "nothing to change"},
		{name: "users", args: []string{"user", "list"}, want: "owner@acme.example"},
		{name: "a user by e-mail", args: []string{"user", "get", "dev@acme.example"}, want: "viewer of acme\n"},
		{name: "rename", args: []string{"user", "update", "dev@acme.example", "--name", "Dana", "-o", "json"}, want: `"name": "Dana"`},
		{name: "a viewer token may not create organisations", args: []string{"org", "create", "x"}, token: viewerSecret,
			err: "may not perform org.create"},
		{name: "an organisation that owns sites is not deleted",
			args: []string{"site", "create", "shop.acme.localhost", "--title", "Shop", "--admin-email", "me@example.com", "--org", "acme", "--wait=false"},
			want: "shop.acme.localhost"},
		{name: "the organisation's quotas show its site", args: []string{"org", "get", "acme"}, golden: "org_get_sites_table"},
		{name: "delete refused", args: []string{"org", "delete", "acme"}, err: `organisation "acme" owns 1 sites; delete them first`},
		{name: "the owner sees its organisation", args: []string{"org", "list"}, token: ownerSecret, want: "acme"},
		{name: "but not the others", args: []string{"org", "get", "default"}, token: ownerSecret, err: `organisation "default" not found`},
		{name: "the owner revokes the invitation", args: []string{"invite", "revoke", "INVITE", "--org", "acme"}, token: ownerSecret,
			want: "revoked"},
		{name: "the owner may not list users", args: []string{"user", "list"}, token: ownerSecret, err: "may not perform user.list"},
		{name: "delete a user", args: []string{"user", "delete", "dev@acme.example"}, want: "deleted"},
	}
	for _, st := range steps {
		if st.name == "the owner sees its organisation" {
			// A sign-in of the owner, as the sign-in routes make them.
			u, err := h.store.GetUserByEmail(context.Background(), "owner@acme.example")
			if err != nil {
				t.Fatal(err)
			}
			if err := h.store.CreateToken(context.Background(), store.Token{ID: "tok-owner", Name: "owner", Role: store.RoleUser,
				Kind: store.TokenSession, UserID: u.ID, Hash: hash(ownerSecret), CreatedAt: created}); err != nil {
				t.Fatal(err)
			}
		}
		args := make([]string, len(st.args))
		for i, a := range st.args {
			args[i] = strings.ReplaceAll(a, "INVITE", inviteID)
		}
		h.env[EnvToken] = adminSecret
		if st.token != "" {
			h.env[EnvToken] = st.token
		}
		out, stderr, err := h.run(t, args...)
		switch {
		case st.err != "":
			if err == nil || !strings.Contains(err.Error(), st.err) {
				t.Fatalf("%s: %v: error %v, want %q (stdout %q)", st.name, args, err, st.err, out)
			}
			continue
		case err != nil:
			t.Fatalf("%s: %v: %v (stderr %q)", st.name, args, err, stderr)
		}
		if st.want != "" && !strings.Contains(out, st.want) {
			t.Errorf("%s: %v: output %q lacks %q", st.name, args, out, st.want)
		}
		if st.golden != "" {
			golden(t, st.golden, userIDRE.ReplaceAllString(out, "usr-<16 hex digits>"))
		}
		if st.after != nil {
			st.after(t, out)
		}
	}
}
