package api

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/aipress/aipress/internal/store"
)

// TestOrgScenarios runs the real organisation, member, invitation and user
// handlers as the callers of the matrix fixture (acme belongs to the
// partner resell; globex to no partner; initech to another partner,
// rival), step by step: each step sees what the earlier ones did.
func TestOrgScenarios(t *testing.T) {
	f := newMatrixFixture(t)
	e := f.env
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(e.store.CreateOrg(ctx, &store.Org{Name: "rival", Kind: store.OrgPartner, Plan: "basic", CreatedAt: testNow}))
	must(e.store.CreateOrg(ctx, &store.Org{Name: "initech", Partner: "rival", Plan: "basic", CreatedAt: testNow}))

	names := func(m map[string]any, key string) []string {
		var out []string
		items, _ := m["items"].([]any)
		for _, it := range items {
			out = append(out, it.(map[string]any)[key].(string))
		}
		return out
	}
	wantNames := func(key string, want ...string) func(t *testing.T, m map[string]any) {
		return func(t *testing.T, m map[string]any) {
			t.Helper()
			if got := names(m, key); !slices.Equal(got, want) {
				t.Errorf("%s = %v, want %v", key, got, want)
			}
		}
	}
	wantMsg := func(sub string) func(t *testing.T, m map[string]any) {
		return func(t *testing.T, m map[string]any) {
			t.Helper()
			if msg, _ := get(m, "error.message").(string); !strings.Contains(msg, sub) {
				t.Errorf("message %q does not say %q", msg, sub)
			}
		}
	}
	var inviteID, inviteSecret string
	type step struct {
		name   string
		caller string
		method string
		path   string
		pathf  func() string // when the path depends on an earlier step
		body   any
		code   int
		check  func(t *testing.T, m map[string]any)
	}
	steps := []step{
		// A partner creates an organisation and a site in it.
		{name: "the partner creates an organisation under itself", caller: "partner", method: "POST", path: "/v1/orgs",
			body: map[string]any{"name": "newco", "display_name": "New Co"}, code: 201,
			check: func(t *testing.T, m map[string]any) {
				if m["partner"] != "resell" || m["kind"] != "customer" || m["plan"] != "basic" {
					t.Errorf("org = %v", m)
				}
			}},
		{name: "creating it again is a conflict", caller: "partner", method: "POST", path: "/v1/orgs",
			body: map[string]any{"name": "newco"}, code: 409},
		{name: "the partner may not create under another partner", caller: "partner", method: "POST", path: "/v1/orgs",
			body: map[string]any{"name": "x1", "partner": "rival"}, code: 404},
		{name: "the partner may not create a partner", caller: "partner", method: "POST", path: "/v1/orgs",
			body: map[string]any{"name": "x2", "kind": "partner"}, code: 403},
		{name: "an owner of a customer organisation creates none", caller: "owner", method: "POST", path: "/v1/orgs",
			body: map[string]any{"name": "x3"}, code: 403, check: wantMsg("owners of a partner")},
		{name: "an invalid name", caller: "admin", method: "POST", path: "/v1/orgs", body: map[string]any{"name": "Bad_Name"}, code: 400},
		{name: "an unknown plan", caller: "admin", method: "POST", path: "/v1/orgs", body: map[string]any{"name": "x4", "plan": "gold"}, code: 400,
			check: wantMsg("unknown plan")},
		{name: "the partner creates a site in its new organisation", caller: "partner", method: "POST", path: "/v1/sites",
			body: map[string]any{"domain": "shop.newco.test", "title": "T", "admin_email": "me@example.com", "org": "newco"}, code: 201},
		{name: "the new organisation counts its site", caller: "partner", method: "GET", path: "/v1/orgs/newco", code: 200,
			check: func(t *testing.T, m map[string]any) {
				if get(m, "quotas.sites.used") != 1.0 || get(m, "display_name") != "New Co" {
					t.Errorf("org = %v", m)
				}
			}},
		{name: "the partner lists its organisations only", caller: "partner", method: "GET", path: "/v1/orgs", code: 200,
			check: wantNames("name", "acme", "newco", "resell")},
		{name: "a platform admin lists every organisation", caller: "admin", method: "GET", path: "/v1/orgs", code: 200,
			check: wantNames("name", "acme", "default", "globex", "initech", "newco", "resell", "rival")},
		{name: "pages", caller: "support", method: "GET", path: "/v1/orgs?limit=2", code: 200,
			check: func(t *testing.T, m map[string]any) {
				if got := names(m, "name"); len(got) != 2 || m["continue"] == nil {
					t.Errorf("page = %v", m)
				}
			}},
		{name: "billing lists its organisation", caller: "billing", method: "GET", path: "/v1/orgs", code: 200,
			check: wantNames("name", "acme")},
		{name: "a partner's organisations", caller: "admin", method: "GET", path: "/v1/orgs?partner=resell", code: 200,
			check: wantNames("name", "acme", "newco")},
		{name: "the partner may not read another partner's organisation", caller: "partner", method: "GET", path: "/v1/orgs/initech", code: 404,
			check: wantMsg(`organisation "initech" not found`)},
		{name: "nor change it", caller: "partner", method: "PATCH", path: "/v1/orgs/initech", body: map[string]any{"plan": "basic"}, code: 404},
		{name: "nor delete it", caller: "partner", method: "DELETE", path: "/v1/orgs/initech", code: 404},
		{name: "nor list its members", caller: "partner", method: "GET", path: "/v1/orgs/initech/members", code: 404},
		{name: "nor invite to it", caller: "partner", method: "POST", path: "/v1/orgs/initech/invites",
			body: map[string]any{"email": "spy@example.com", "role": "owner"}, code: 404},
		{name: "nor create a site in it", caller: "partner", method: "POST", path: "/v1/sites",
			body: map[string]any{"domain": "x.initech.test", "title": "T", "admin_email": "me@example.com", "org": "initech"}, code: 404},
		{name: "an unknown organisation reads as missing to an admin too", caller: "admin", method: "GET", path: "/v1/orgs/nope", code: 404},

		// Members.
		{name: "the owner lists acme's members", caller: "owner", method: "GET", path: "/v1/orgs/acme/members", code: 200,
			check: wantNames("email", "billing@example.com", "developer@example.com", "orgviewer@example.com", "owner@example.com")},
		{name: "a viewer lists them too", caller: "orgviewer", method: "GET", path: "/v1/orgs/acme/members", code: 200},
		{name: "another organisation's members are hidden", caller: "developer", method: "GET", path: "/v1/orgs/globex/members", code: 404},
		{name: "a developer may not change roles", caller: "developer", method: "PUT", path: "/v1/orgs/acme/members/usr-orgviewer",
			body: map[string]any{"role": "developer"}, code: 403},
		{name: "a developer may not remove others", caller: "developer", method: "DELETE", path: "/v1/orgs/acme/members/usr-orgviewer", code: 403},
		{name: "the owner promotes the viewer", caller: "owner", method: "PUT", path: "/v1/orgs/acme/members/usr-orgviewer",
			body: map[string]any{"role": "developer"}, code: 200,
			check: func(t *testing.T, m map[string]any) {
				if m["role"] != "developer" {
					t.Errorf("membership = %v", m)
				}
			}},
		{name: "setting the same role again changes nothing", caller: "owner", method: "PUT", path: "/v1/orgs/acme/members/usr-orgviewer",
			body: map[string]any{"role": "developer"}, code: 200},
		{name: "an invalid role", caller: "owner", method: "PUT", path: "/v1/orgs/acme/members/usr-orgviewer",
			body: map[string]any{"role": "god"}, code: 400},
		{name: "owners do not add users who are not members", caller: "owner", method: "PUT", path: "/v1/orgs/acme/members/usr-partner",
			body: map[string]any{"role": "owner"}, code: 404},
		{name: "the last owner may not be demoted", caller: "owner", method: "PUT", path: "/v1/orgs/acme/members/usr-owner",
			body: map[string]any{"role": "viewer"}, code: 409, check: wantMsg("last owner")},
		{name: "nor removed", caller: "owner", method: "DELETE", path: "/v1/orgs/acme/members/usr-owner", code: 409},
		{name: "a platform admin adds a user", caller: "admin", method: "PUT", path: "/v1/orgs/acme/members/usr-partner",
			body: map[string]any{"role": "owner"}, code: 200},
		{name: "with two owners, one may leave", caller: "owner", method: "DELETE", path: "/v1/orgs/acme/members/usr-partner", code: 204},
		{name: "removing a non-member", caller: "owner", method: "DELETE", path: "/v1/orgs/acme/members/usr-partner", code: 404},
		{name: "the partner manages members of its organisations", caller: "partner", method: "PUT", path: "/v1/orgs/acme/members/usr-orgviewer",
			body: map[string]any{"role": "viewer"}, code: 200},

		// Invitations.
		{name: "the owner invites a developer", caller: "owner", method: "POST", path: "/v1/orgs/acme/invites",
			body: map[string]any{"email": "New@Example.com", "role": "developer"}, code: 201,
			check: func(t *testing.T, m map[string]any) {
				sec := f.env.inviteSecret(t)
				if !strings.HasPrefix(sec, InvitePrefix) || m["state"] != "pending" || m["email"] != "new@example.com" ||
					m["expires_at"] != testNow.Add(InviteLifetime).Format("2006-01-02T15:04:05Z") || m["created_by"] != "usr-owner" ||
					m["sent_to"] != "new@example.com" {
					t.Errorf("invite = %v", m)
				}
				if _, shown := m["token"]; shown {
					t.Errorf("the inviter sees the invitation's secret: %v", m)
				}
				if mail := f.env.mail.last(t); mail.To != "new@example.com" || !strings.Contains(mail.Body, "://example.com/invite#"+sec) {
					t.Errorf("mail = %+v", mail)
				}
				inviteSecret = sec
			}},
		{name: "inviting again replaces the pending invitation", caller: "owner", method: "POST", path: "/v1/orgs/acme/invites",
			body: map[string]any{"email": "new@example.com", "role": "viewer"}, code: 201,
			check: func(t *testing.T, m map[string]any) {
				inviteID, _ = m["id"].(string)
				if f.env.inviteSecret(t) == inviteSecret {
					t.Error("the same secret twice")
				}
			}},
		{name: "one invitation is listed, without its secret", caller: "owner", method: "GET", path: "/v1/orgs/acme/invites", code: 200,
			check: func(t *testing.T, m map[string]any) {
				items, _ := m["items"].([]any)
				if len(items) != 1 || get(items[0].(map[string]any), "id") != inviteID || get(items[0].(map[string]any), "role") != "viewer" {
					t.Errorf("invites = %v", m)
				}
				if _, ok := items[0].(map[string]any)["token"]; ok {
					t.Errorf("a listed invite shows its secret")
				}
			}},
		{name: "a member is not invited", caller: "owner", method: "POST", path: "/v1/orgs/acme/invites",
			body: map[string]any{"email": "developer@example.com", "role": "viewer"}, code: 409, check: wantMsg("already a member")},
		{name: "an invalid address", caller: "owner", method: "POST", path: "/v1/orgs/acme/invites",
			body: map[string]any{"email": "Bob <bob@example.com>", "role": "viewer"}, code: 400},
		{name: "a developer may not invite", caller: "developer", method: "POST", path: "/v1/orgs/acme/invites",
			body: map[string]any{"email": "x@example.com", "role": "viewer"}, code: 403},
		{name: "nor list invitations", caller: "developer", method: "GET", path: "/v1/orgs/acme/invites", code: 403},
		{name: "another organisation's invitation is not found", caller: "admin", method: "DELETE",
			pathf: func() string { return "/v1/orgs/globex/invites/" + inviteID }, code: 404},
		{name: "the owner revokes the invitation", caller: "owner", method: "DELETE",
			pathf: func() string { return "/v1/orgs/acme/invites/" + inviteID }, code: 204},
		{name: "no invitation is left", caller: "owner", method: "GET", path: "/v1/orgs/acme/invites", code: 200,
			check: wantNames("id")},

		// Users.
		{name: "customers may not list users", caller: "owner", method: "GET", path: "/v1/users", code: 403},
		{name: "operators list users", caller: "operator", method: "GET", path: "/v1/users", code: 200,
			check: func(t *testing.T, m map[string]any) {
				if got := names(m, "email"); len(got) != 6 { // the migration's admin and the fixture's five
					t.Errorf("users = %v", got)
				}
			}},
		{name: "users of an organisation", caller: "support", method: "GET", path: "/v1/users?org=resell", code: 200,
			check: wantNames("email", "partner@example.com")},
		{name: "an owner may not create users", caller: "owner", method: "POST", path: "/v1/users",
			body: map[string]any{"email": "ops@example.com"}, code: 403},
		{name: "a platform admin creates a user in acme", caller: "admin", method: "POST", path: "/v1/users",
			body: map[string]any{"email": "ops@example.com", "name": "Ops", "platform_role": "operator", "org": "acme", "role": "viewer"}, code: 201,
			check: func(t *testing.T, m map[string]any) {
				ms, _ := m["memberships"].([]any)
				if !strings.HasPrefix(m["id"].(string), "usr-") || m["platform_role"] != "operator" || len(ms) != 1 {
					t.Errorf("user = %v", m)
				}
			}},
		{name: "the same email twice", caller: "admin", method: "POST", path: "/v1/users", body: map[string]any{"email": "OPS@example.com"}, code: 409},
		{name: "a user in an unknown organisation", caller: "admin", method: "POST", path: "/v1/users",
			body: map[string]any{"email": "z@example.com", "org": "nope", "role": "viewer"}, code: 404},
		{name: "the owner reads a member", caller: "owner", method: "GET", path: "/v1/users/usr-developer", code: 200},
		{name: "the partner reads a member of its organisation", caller: "partner", method: "GET", path: "/v1/users/usr-owner", code: 200,
			check: func(t *testing.T, m map[string]any) {
				if ms, _ := m["memberships"].([]any); len(ms) != 1 {
					t.Errorf("memberships = %v", ms)
				}
			}},
		{name: "a developer reads itself", caller: "developer", method: "GET", path: "/v1/users/usr-developer", code: 200},
		{name: "but not its owner", caller: "developer", method: "GET", path: "/v1/users/usr-owner", code: 404},
		{name: "an owner does not see users of other organisations", caller: "owner", method: "GET", path: "/v1/users/usr-partner", code: 404},
		{name: "a user renames itself", caller: "developer", method: "PATCH", path: "/v1/users/usr-developer",
			body: map[string]any{"name": "Dev"}, code: 200,
			check: func(t *testing.T, m map[string]any) {
				if m["name"] != "Dev" {
					t.Errorf("user = %v", m)
				}
			}},
		{name: "but may not make itself admin", caller: "developer", method: "PATCH", path: "/v1/users/usr-developer",
			body: map[string]any{"platform_role": "admin"}, code: 403},
		{name: "nor rename others", caller: "owner", method: "PATCH", path: "/v1/users/usr-developer", body: map[string]any{"name": "x"}, code: 403},
		{name: "the last owner of an organisation is not deleted", caller: "admin", method: "DELETE", path: "/v1/users/usr-owner", code: 409,
			check: wantMsg("last owner")},

		// Changing organisations.
		{name: "billing changes the plan", caller: "billing", method: "PATCH", path: "/v1/orgs/acme", body: map[string]any{"plan": "basic"}, code: 200,
			check: func(t *testing.T, m map[string]any) {
				if m["plan"] != "basic" || get(m, "quotas.sites.used") != 1.0 {
					t.Errorf("org = %v", m)
				}
			}},
		{name: "but not the display name", caller: "billing", method: "PATCH", path: "/v1/orgs/acme", body: map[string]any{"display_name": "x"}, code: 403},
		{name: "a developer changes nothing", caller: "developer", method: "PATCH", path: "/v1/orgs/acme", body: map[string]any{"plan": "dev"}, code: 403},
		{name: "the owner sets the branding", caller: "owner", method: "PATCH", path: "/v1/orgs/acme",
			body: map[string]any{"display_name": "ACME Inc.", "branding": map[string]any{"product_name": "ACME Sites", "primary_color": "#112233",
				"logo_url": "https://acme.example/logo.png", "support_email": "help@acme.example"}}, code: 200,
			check: func(t *testing.T, m map[string]any) {
				if get(m, "branding.primary_color") != "#112233" || m["display_name"] != "ACME Inc." {
					t.Errorf("org = %v", m)
				}
			}},
		{name: "a bad colour", caller: "owner", method: "PATCH", path: "/v1/orgs/acme",
			body: map[string]any{"branding": map[string]any{"accent_color": "red"}}, code: 400, check: wantMsg("accent_color")},
		{name: "an owner may not move its organisation to another partner", caller: "owner", method: "PATCH", path: "/v1/orgs/acme",
			body: map[string]any{"partner": ""}, code: 403},
		{name: "the kind does not change", caller: "admin", method: "PATCH", path: "/v1/orgs/acme", body: map[string]any{"kind": "partner"}, code: 400,
			check: wantMsg("kind cannot change")},
		{name: "an organisation with a pro site", caller: "admin", method: "POST", path: "/v1/orgs", body: map[string]any{"name": "big", "plan": "business"}, code: 201},
		{name: "its pro site", caller: "admin", method: "POST", path: "/v1/sites",
			body: map[string]any{"domain": "s1.big.test", "title": "T", "admin_email": "me@example.com", "org": "big", "plan": "pro"}, code: 201},
		{name: "may not move to a plan below its sites'", caller: "admin", method: "PATCH", path: "/v1/orgs/big", body: map[string]any{"plan": "dev"},
			code: 403, check: wantMsg("site s1.big.test is on plan pro")},
		{name: "an unknown organisation plan", caller: "admin", method: "PATCH", path: "/v1/orgs/big", body: map[string]any{"plan": "gold"},
			code: 400, check: wantMsg("unknown plan")},
		{name: "an admin moves an organisation to another partner", caller: "admin", method: "PATCH", path: "/v1/orgs/newco",
			body: map[string]any{"partner": "rival"}, code: 200},
		{name: "whose old partner no longer sees it", caller: "partner", method: "GET", path: "/v1/orgs/newco", code: 404},

		// Deleting organisations.
		{name: "an organisation that owns sites is not deleted", caller: "owner", method: "DELETE", path: "/v1/orgs/acme", code: 409,
			check: wantMsg("owns 1 sites")},
		{name: "a partner that owns organisations is not deleted", caller: "admin", method: "DELETE", path: "/v1/orgs/rival", code: 409,
			check: wantMsg("owns 2 organisations")},
		{name: "the default organisation is not deleted", caller: "admin", method: "DELETE", path: "/v1/orgs/default", code: 409},
		{name: "a developer may not delete its organisation", caller: "developer", method: "DELETE", path: "/v1/orgs/acme", code: 403},
		{name: "an admin creates an empty organisation", caller: "admin", method: "POST", path: "/v1/orgs", body: map[string]any{"name": "empty"}, code: 201},
		{name: "and deletes it", caller: "admin", method: "DELETE", path: "/v1/orgs/empty", code: 204},
		{name: "it is gone", caller: "admin", method: "GET", path: "/v1/orgs/empty", code: 404},

		// Last: leaving and disabling.
		{name: "a member leaves", caller: "billing", method: "DELETE", path: "/v1/orgs/acme/members/usr-billing", code: 204},
		{name: "and no longer sees the organisation", caller: "billing", method: "GET", path: "/v1/orgs/acme", code: 404},
		{name: "an admin disables a user", caller: "admin", method: "PATCH", path: "/v1/users/usr-developer",
			body: map[string]any{"disabled": true}, code: 200},
		{name: "whose sign-in stops working", caller: "developer", method: "GET", path: "/v1/orgs", code: 401},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			path := st.path
			if st.pathf != nil {
				path = st.pathf()
			}
			code, m, _ := e.do(t, st.method, path, f.secrets[st.caller], st.body)
			if code != st.code {
				t.Fatalf("%s %s as %s: %d, want %d: %v", st.method, path, st.caller, code, st.code, m)
			}
			if st.check != nil {
				st.check(t, m)
			}
		})
	}

	// Every change was audited, with the organisation acted in.
	entries, err := e.store.ListAudit(ctx, store.AuditListOptions{Limit: store.MaxLimit})
	must(err)
	want := map[string][2]string{ // action → target, org
		"org.create":        {"newco", "newco"},
		"org.member.set":    {"acme/usr-orgviewer", "acme"},
		"org.member.remove": {"acme/usr-billing", "acme"},
		"org.invite.create": {"acme/new@example.com", "acme"},
		"org.update":        {"acme", "acme"},
		"user.create":       {"", "acme"},
	}
	for _, en := range entries {
		if w, ok := want[en.Action]; ok && en.Outcome == "success" && (w[0] == "" || en.Target == w[0]) && en.Org == w[1] {
			delete(want, en.Action)
		}
	}
	if len(want) != 0 {
		t.Errorf("not audited: %v", want)
	}
}

// TestInviteAccepted: an invitation made by the organisations API is
// redeemed by the sign-in API; the new user is then a member with the
// invited role, and the secret works once.
func TestInviteAccepted(t *testing.T) {
	f := newMatrixFixture(t)
	e := f.env
	code, m, _ := e.do(t, "POST", "/v1/orgs/acme/invites", f.secrets["owner"], map[string]any{"email": "nina@example.com", "role": "billing"})
	if code != 201 {
		t.Fatalf("invite: %d %v", code, m)
	}
	secret := e.inviteSecret(t)
	accept := map[string]any{"token": secret, "password": "correct horse battery staple", "name": "Nina"}
	if code, m, _ := e.do(t, "POST", "/v1/invites/accept", "", accept); code >= 300 {
		t.Fatalf("accept: %d %v", code, m)
	}
	_, m, _ = e.do(t, "GET", "/v1/orgs/acme/members", f.secrets["owner"], nil)
	found := false
	for _, it := range m["items"].([]any) {
		mm := it.(map[string]any)
		found = found || (mm["email"] == "nina@example.com" && mm["role"] == "billing")
	}
	if !found {
		t.Errorf("members = %v", m)
	}
	_, m, _ = e.do(t, "GET", "/v1/orgs/acme/invites", f.secrets["owner"], nil)
	if items := m["items"].([]any); len(items) != 1 || items[0].(map[string]any)["state"] != "accepted" {
		t.Errorf("invites = %v", m)
	}
	if code, _, _ := e.do(t, "POST", "/v1/invites/accept", "", accept); code < 400 {
		t.Errorf("second accept: %d", code)
	}
	// The organisation's owner sees who joined.
	_, m, _ = e.do(t, "GET", "/v1/audit", f.secrets["owner"], nil)
	joined := false
	for _, it := range m["items"].([]any) {
		en := it.(map[string]any)
		joined = joined || (en["action"] == "invite.accept" && en["outcome"] == "success" && en["org"] == "acme")
	}
	if !joined {
		t.Errorf("invite.accept not in acme's audit: %v", m)
	}
}
