package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
)

// The accounts part of the suite: store.Accounts' contract, the site's
// organisation and the token scope fields (store.Store's doc comment).

func newOrg(name string) *store.Org {
	return &store.Org{
		Name:        name,
		DisplayName: "Org " + name,
		Kind:        store.OrgCustomer,
		Plan:        "pro",
		Branding:    store.Branding{ProductName: "P " + name, LogoURL: "https://" + name + ".example/logo.png", PrimaryColor: "#112233", AccentColor: "#445566", SupportEmail: "help@" + name + ".example"},
		CreatedAt:   base,
	}
}

// slug turns a test case's name into an organisation name's tail.
func slug(name string) string {
	return strings.Map(func(r rune) rune {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			return r
		}
		return '-'
	}, strings.ToLower(name))
}

func mustCreateOrg(t *testing.T, s store.Store, o *store.Org) *store.Org {
	t.Helper()
	if err := s.CreateOrg(t.Context(), o); err != nil {
		t.Fatalf("create org %q: %v", o.Name, err)
	}
	return o
}

func newUser(id string) *store.User {
	locked := base.Add(15 * time.Minute)
	last := base.Add(-time.Hour)
	return &store.User{
		ID:           id,
		Email:        id + "@Example.COM",
		Name:         "Name of " + id,
		PasswordHash: "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",
		FailedLogins: 2,
		LockedUntil:  &locked,
		CreatedAt:    base,
		LastLoginAt:  &last,
	}
}

func mustCreateUser(t *testing.T, s store.Store, u *store.User) *store.User {
	t.Helper()
	if err := s.CreateUser(t.Context(), u); err != nil {
		t.Fatalf("create user %q: %v", u.ID, err)
	}
	return u
}

// canonicalJSON renders v for comparison, with every time in UTC (the JSON
// of time.Time keeps the zone, which stores need not keep).
func canonicalJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var m any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	var walk func(any) any
	walk = func(x any) any {
		switch x := x.(type) {
		case map[string]any:
			for k, v := range x {
				x[k] = walk(v)
			}
		case []any:
			for i, v := range x {
				x[i] = walk(v)
			}
		case string:
			if tm, err := time.Parse(time.RFC3339Nano, x); err == nil {
				return tm.UTC().Format(time.RFC3339Nano)
			}
		}
		return x
	}
	out, err := json.MarshalIndent(walk(m), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func assertSameJSON(t *testing.T, what string, got, want any) {
	t.Helper()
	if g, w := canonicalJSON(t, got), canonicalJSON(t, want); g != w {
		t.Errorf("%s differs\ngot:  %s\nwant: %s", what, g, w)
	}
}

func testOrgCreateGet(t *testing.T, h *harness) {
	s := h.fresh(t)
	ctx := t.Context()

	t.Run("default org", func(t *testing.T) {
		d, err := s.GetOrg(ctx, store.DefaultOrg)
		if err != nil {
			t.Fatal(err)
		}
		if d.Kind != store.OrgCustomer || d.Plan != "" || d.Partner != "" || d.CreatedAt.IsZero() {
			t.Errorf("default org = %+v", *d)
		}
		u, err := s.GetUser(ctx, store.BootstrapUserID)
		if err != nil {
			t.Fatal(err)
		}
		if u.Email != "admin@localhost" || u.PlatformRole != store.RoleAdmin || u.PasswordHash != "" {
			t.Errorf("bootstrap user = %+v", *u)
		}
		ms, err := s.ListMemberships(ctx, store.MembershipFilter{UserID: store.BootstrapUserID})
		if err != nil || len(ms) != 1 || ms[0].Org != store.DefaultOrg || ms[0].Role != store.OrgOwner {
			t.Errorf("bootstrap memberships = %+v, %v", ms, err)
		}
	})

	partner := newOrg("reseller")
	partner.Kind = store.OrgPartner
	mustCreateOrg(t, s, partner)
	child := newOrg("acme")
	child.Partner = "reseller"
	child.Suspended = true
	noKind := newOrg("nokind")
	noKind.Kind = ""
	for _, o := range []*store.Org{child, noKind} {
		want := *o
		rev := revision(t, s)
		mustCreateOrg(t, s, o)
		if o.ResourceVersion <= rev {
			t.Errorf("%s: resource version %d, want above the revision %d", o.Name, o.ResourceVersion, rev)
		}
		if want.Kind == "" {
			want.Kind = store.OrgCustomer
		}
		want.ResourceVersion = o.ResourceVersion
		got, err := s.GetOrg(ctx, o.Name)
		if err != nil {
			t.Fatal(err)
		}
		assertSameJSON(t, "org "+o.Name, got, &want)
		if !got.CreatedAt.Equal(want.CreatedAt) {
			t.Errorf("created_at %v, want %v", got.CreatedAt, want.CreatedAt)
		}
	}

	long := strings.Repeat("a", 64)
	for _, tc := range []struct {
		name   string
		mutate func(*store.Org)
		want   error
	}{
		{"duplicate", func(o *store.Org) { o.Name = "acme" }, store.ErrAlreadyExists},
		{"default again", func(o *store.Org) { o.Name = store.DefaultOrg }, store.ErrAlreadyExists},
		{"empty name", func(o *store.Org) { o.Name = "" }, store.ErrInvalid},
		{"upper case", func(o *store.Org) { o.Name = "Acme2" }, store.ErrInvalid},
		{"digit first", func(o *store.Org) { o.Name = "1acme" }, store.ErrInvalid},
		{"underscore", func(o *store.Org) { o.Name = "a_b" }, store.ErrInvalid},
		{"64 long", func(o *store.Org) { o.Name = long }, store.ErrInvalid},
		{"bad kind", func(o *store.Org) { o.Kind = "reseller" }, store.ErrInvalid},
		{"partner with partner", func(o *store.Org) { o.Kind = store.OrgPartner; o.Partner = "reseller" }, store.ErrInvalid},
		{"unknown partner", func(o *store.Org) { o.Partner = "nobody" }, store.ErrInvalid},
		{"customer as partner", func(o *store.Org) { o.Partner = "acme" }, store.ErrInvalid},
		{"own partner", func(o *store.Org) { o.Partner = o.Name }, store.ErrInvalid},
		{"zero created_at", func(o *store.Org) { o.CreatedAt = time.Time{} }, store.ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := newOrg("new-" + slug(tc.name))
			tc.mutate(o)
			rev := revision(t, s)
			if err := s.CreateOrg(ctx, o); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if after := revision(t, s); after != rev {
				t.Errorf("refused create moved the revision %d -> %d", rev, after)
			}
			if tc.want == store.ErrInvalid && o.Name != "" && store.ValidOrgName(o.Name) {
				if _, err := s.GetOrg(ctx, o.Name); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("refused org stored: %v", err)
				}
			}
		})
	}
	t.Run("63 long", func(t *testing.T) {
		mustCreateOrg(t, s, newOrg("b"+strings.Repeat("-", 61)+"9"))
	})
	for _, name := range []string{"unknown", ""} {
		if _, err := s.GetOrg(ctx, name); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("get %q: err = %v, want ErrNotFound", name, err)
		}
	}
}

func testOrgUpdate(t *testing.T, h *harness) {
	s := h.fresh(t)
	ctx := t.Context()
	p := newOrg("partner")
	p.Kind = store.OrgPartner
	mustCreateOrg(t, s, p)
	for _, tc := range []struct {
		name      string
		mutate    func(*store.Org)
		wantWrite bool
		wantErr   error
	}{
		{"display name", func(o *store.Org) { o.DisplayName = "New" }, true, nil},
		{"plan and branding", func(o *store.Org) { o.Plan = "business"; o.Branding.PrimaryColor = "#000000" }, true, nil},
		{"suspend", func(o *store.Org) { o.Suspended = true }, true, nil},
		{"set partner", func(o *store.Org) { o.Partner = "partner" }, true, nil},
		{"nothing", func(*store.Org) {}, false, nil},
		{"resource version ignored", func(o *store.Org) { o.ResourceVersion = 4242 }, false, nil},
		{"created_at same instant", func(o *store.Org) { o.CreatedAt = o.CreatedAt.In(time.FixedZone("X", 3600)) }, false, nil},
		{"name", func(o *store.Org) { o.Name = "renamed" }, false, store.ErrInvalid},
		{"kind", func(o *store.Org) { o.Kind = store.OrgPartner }, false, store.ErrInvalid},
		{"created_at", func(o *store.Org) { o.CreatedAt = o.CreatedAt.Add(time.Second) }, false, store.ErrInvalid},
		{"unknown partner", func(o *store.Org) { o.Partner = "nobody" }, false, store.ErrInvalid},
		{"customer partner", func(o *store.Org) { o.Partner = store.DefaultOrg }, false, store.ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := "o-" + slug(tc.name)
			mustCreateOrg(t, s, newOrg(name))
			before, err := s.GetOrg(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			want := *before
			tc.mutate(&want)
			want.ResourceVersion, want.CreatedAt = before.ResourceVersion, before.CreatedAt
			got, err := s.UpdateOrg(ctx, name, func(o *store.Org) error { tc.mutate(o); return nil })
			stored, gerr := s.GetOrg(ctx, name)
			if gerr != nil {
				t.Fatal(gerr)
			}
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				assertSameJSON(t, "refused update stored", stored, before)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantWrite {
				if got.ResourceVersion <= before.ResourceVersion {
					t.Errorf("resource version %d, want above %d", got.ResourceVersion, before.ResourceVersion)
				}
				want.ResourceVersion = got.ResourceVersion
			} else if got.ResourceVersion != before.ResourceVersion {
				t.Errorf("no-op update moved resource version %d -> %d", before.ResourceVersion, got.ResourceVersion)
			}
			assertSameJSON(t, "returned org", got, &want)
			assertSameJSON(t, "stored org", stored, &want)
		})
	}
	t.Run("mutate error", func(t *testing.T) {
		boom := errors.New("boom")
		if _, err := s.UpdateOrg(ctx, "partner", func(*store.Org) error { return boom }); err != boom { //nolint:errorlint // identity
			t.Errorf("err = %v, want mutate's error as is", err)
		}
	})
	t.Run("unknown", func(t *testing.T) {
		if _, err := s.UpdateOrg(ctx, "nobody", func(*store.Org) error { return nil }); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("err = %v, want ErrNotFound", err)
		}
	})
}

func testOrgDelete(t *testing.T, h *harness) {
	s := h.fresh(t)
	ctx := t.Context()
	p := newOrg("partner")
	p.Kind = store.OrgPartner
	mustCreateOrg(t, s, p)
	child := newOrg("child")
	child.Partner = "partner"
	mustCreateOrg(t, s, child)
	mustCreateOrg(t, s, newOrg("withsite"))
	st := newSite("a.example.com")
	st.Metadata.Org = "withsite"
	mustCreate(t, s, st)
	mustCreateOrg(t, s, newOrg("gone"))
	u := mustCreateUser(t, s, newUser("usr-1"))
	if err := s.PutMembership(ctx, store.Membership{Org: "gone", UserID: u.ID, Role: store.OrgOwner, CreatedAt: base}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutMembership(ctx, store.Membership{Org: "child", UserID: u.ID, Role: store.OrgViewer, CreatedAt: base}); err != nil {
		t.Fatal(err)
	}
	inv := newInvite("inv-1", "gone", "invite-secret")
	if err := s.CreateInvite(ctx, inv); err != nil {
		t.Fatal(err)
	}
	scoped := newToken("tok-scoped", "scoped")
	scoped.UserID, scoped.Org, scoped.Role = u.ID, "gone", store.Role(store.OrgDeveloper)
	platform := newToken("tok-user", "user")
	platform.UserID = u.ID
	for _, tok := range []store.Token{scoped, platform} {
		if err := s.CreateToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}

	for _, tc := range []struct {
		name string
		want error
	}{
		{"withsite", store.ErrConflict},
		{"partner", store.ErrConflict},
		{store.DefaultOrg, store.ErrConflict},
		{"nobody", store.ErrNotFound},
	} {
		if err := s.DeleteOrg(ctx, tc.name); !errors.Is(err, tc.want) {
			t.Errorf("delete %q: err = %v, want %v", tc.name, err, tc.want)
		}
		if tc.want == store.ErrConflict {
			if _, err := s.GetOrg(ctx, tc.name); err != nil {
				t.Errorf("refused delete of %q removed it: %v", tc.name, err)
			}
		}
	}
	if err := s.DeleteOrg(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetOrg(ctx, "gone"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("get deleted org: err = %v", err)
	}
	if ms, err := s.ListMemberships(ctx, store.MembershipFilter{UserID: u.ID}); err != nil || len(ms) != 1 || ms[0].Org != "child" {
		t.Errorf("memberships after delete = %+v, %v; want only child's", ms, err)
	}
	if invs, err := s.ListInvites(ctx, "gone"); err != nil || len(invs) != 0 {
		t.Errorf("invites after delete = %+v, %v", invs, err)
	}
	if _, err := s.AcceptInvite(ctx, inv.Hash, base); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("accept an invite of a deleted org: err = %v, want ErrNotFound", err)
	}
	if _, err := s.LookupToken(ctx, scoped.Hash); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("org-scoped token survived its org: err = %v", err)
	}
	if _, err := s.LookupToken(ctx, platform.Hash); err != nil {
		t.Errorf("the user's unscoped token went with the org: %v", err)
	}
	// The last site gone, the org may go; the child gone, the partner may.
	if err := s.DeleteSite(ctx, "a.example.com"); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"withsite", "child", "partner"} {
		if err := s.DeleteOrg(ctx, name); err != nil {
			t.Errorf("delete %q: %v", name, err)
		}
	}
	// A name is free again, without the old members.
	mustCreateOrg(t, s, newOrg("gone"))
	if ms, err := s.ListMemberships(ctx, store.MembershipFilter{Org: "gone"}); err != nil || len(ms) != 0 {
		t.Errorf("recreated org has memberships %+v, %v", ms, err)
	}
}

func testOrgList(t *testing.T, h *harness) {
	s := h.fresh(t)
	ctx := t.Context()
	p := newOrg("p1")
	p.Kind = store.OrgPartner
	mustCreateOrg(t, s, p)
	for _, n := range []string{"c3", "a1", "b2", "d4"} {
		o := newOrg(n)
		if n == "a1" || n == "d4" {
			o.Partner = "p1"
		}
		mustCreateOrg(t, s, o)
	}
	names := func(opts store.OrgListOptions) (out []string) {
		t.Helper()
		for pages := 0; ; pages++ {
			l, err := s.ListOrgs(ctx, opts)
			if err != nil {
				t.Fatal(err)
			}
			if opts.Limit > 0 && len(l.Items) > opts.Limit {
				t.Errorf("page of %d, limit %d", len(l.Items), opts.Limit)
			}
			for _, o := range l.Items {
				out = append(out, o.Name)
			}
			if l.Continue == "" || pages > 20 {
				return out
			}
			opts.Continue = l.Continue
		}
	}
	for _, tc := range []struct {
		name string
		opts store.OrgListOptions
		want []string
	}{
		{"all", store.OrgListOptions{}, []string{"a1", "b2", "c3", "d4", "default", "p1"}},
		{"pages of 2", store.OrgListOptions{Limit: 2}, []string{"a1", "b2", "c3", "d4", "default", "p1"}},
		{"names", store.OrgListOptions{Names: []string{"d4", "a1", "zz"}}, []string{"a1", "d4"}},
		{"no names", store.OrgListOptions{Names: []string{}}, nil},
		{"partner", store.OrgListOptions{Partner: "p1", Limit: 1}, []string{"a1", "d4"}},
		{"partner and names", store.OrgListOptions{Partner: "p1", Names: []string{"b2", "d4"}}, []string{"d4"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := names(tc.opts); !slices.Equal(got, tc.want) {
				t.Errorf("listed %v, want %v", got, tc.want)
			}
		})
	}
	if _, err := s.ListOrgs(ctx, store.OrgListOptions{Continue: "not-a-token"}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("bad continue: err = %v, want ErrInvalid", err)
	}
}

func testSiteOrg(t *testing.T, h *harness) {
	s := h.fresh(t)
	ctx := t.Context()
	mustCreateOrg(t, s, newOrg("acme"))
	mustCreateOrg(t, s, newOrg("beta"))
	for i, n := range []string{"a1.example.com", "a2.example.com", "a3.example.com"} {
		st := newSite(n)
		st.Metadata.Org = "acme"
		if i == 2 {
			st.Status.Shard = "shard-2"
		}
		mustCreate(t, s, st)
		if got := mustGet(t, s, n); got.Metadata.Org != "acme" {
			t.Errorf("%s: org %q, want acme", n, got.Metadata.Org)
		}
	}
	mustCreate(t, s, newSite("d.example.com"))
	bad := newSite("bad.example.com")
	bad.Metadata.Org = "nobody"
	rev := revision(t, s)
	if err := s.CreateSite(ctx, bad); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("create in an unknown org: err = %v, want ErrInvalid", err)
	}
	if after := revision(t, s); after != rev {
		t.Errorf("refused create moved the revision %d -> %d", rev, after)
	}

	t.Run("count", func(t *testing.T) {
		for org, want := range map[string]int{"acme": 3, store.DefaultOrg: 1, "beta": 0, "nobody": 0} {
			if n, err := s.CountSites(ctx, org); err != nil || n != want {
				t.Errorf("count %q = %d, %v; want %d", org, n, err, want)
			}
		}
	})
	t.Run("list filter", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			opts store.ListOptions
			want []string
		}{
			{"nil orgs", store.ListOptions{}, []string{"a1.example.com", "a2.example.com", "a3.example.com", "d.example.com"}},
			{"empty orgs", store.ListOptions{Orgs: []string{}}, nil},
			{"acme in pages", store.ListOptions{Orgs: []string{"acme"}, Limit: 1}, []string{"a1.example.com", "a2.example.com", "a3.example.com"}},
			{"two orgs", store.ListOptions{Orgs: []string{store.DefaultOrg, "beta", "acme"}, Limit: 2}, []string{"a1.example.com", "a2.example.com", "a3.example.com", "d.example.com"}},
			{"org and shard", store.ListOptions{Orgs: []string{"acme"}, Shard: "shard-2"}, []string{"a3.example.com"}},
			{"unknown org", store.ListOptions{Orgs: []string{"nobody"}}, nil},
			{"name contains", store.ListOptions{NameContains: "2.example"}, []string{"a2.example.com"}},
			{"name contains in pages", store.ListOptions{NameContains: "a", Limit: 1}, []string{"a1.example.com", "a2.example.com", "a3.example.com", "d.example.com"}},
			{"name and org", store.ListOptions{NameContains: "example", Orgs: []string{store.DefaultOrg}}, []string{"d.example.com"}},
			{"name matches none", store.ListOptions{NameContains: "nothing"}, nil},
			{"name is not a pattern", store.ListOptions{NameContains: "a_.example"}, nil},
		} {
			t.Run(tc.name, func(t *testing.T) {
				got, _ := listAll(t, s, tc.opts)
				if !slices.Equal(got, tc.want) {
					t.Errorf("listed %v, want %v", got, tc.want)
				}
			})
		}
		l, err := s.ListSites(ctx, store.ListOptions{Orgs: []string{}})
		if err != nil || len(l.Items) != 0 || l.Revision != revision(t, s) {
			t.Errorf("empty orgs list = %+v, %v; want no items at the current revision", l, err)
		}
	})
	t.Run("update cannot move", func(t *testing.T) {
		before := mustGet(t, s, "a1.example.com")
		_, err := s.UpdateSite(ctx, "a1.example.com", func(x *site.Site) error { x.Metadata.Org = "beta"; x.Spec.Title = "t"; return nil })
		if !errors.Is(err, store.ErrInvalid) {
			t.Errorf("err = %v, want ErrInvalid", err)
		}
		assertSiteEqual(t, mustGet(t, s, "a1.example.com"), before)
	})
	t.Run("set org", func(t *testing.T) {
		before := mustGet(t, s, "a2.example.com")
		rev := revision(t, s)
		got, err := s.SetSiteOrg(ctx, "a2.example.com", "beta")
		if err != nil {
			t.Fatal(err)
		}
		want := *before
		want.Metadata.Org = "beta"
		want.Metadata.ResourceVersion = got.Metadata.ResourceVersion
		if got.Metadata.ResourceVersion <= rev {
			t.Errorf("resource version %d, want above %d", got.Metadata.ResourceVersion, rev)
		}
		assertSiteEqual(t, got, &want)
		assertSiteEqual(t, mustGet(t, s, "a2.example.com"), &want)
		cl := mustChanges(t, s, rev, store.ChangeOptions{})
		if len(cl.Sites) != 1 || cl.Sites[0].Metadata.Name != "a2.example.com" || cl.Sites[0].Metadata.Org != "beta" {
			t.Errorf("changes after the move = %s, want the moved site", siteNames(cl.Sites))
		}
		if n, _ := s.CountSites(ctx, "beta"); n != 1 {
			t.Errorf("beta owns %d sites, want 1", n)
		}
		// Again: nothing to write.
		rev = revision(t, s)
		again, err := s.SetSiteOrg(ctx, "a2.example.com", "beta")
		if err != nil || again.Metadata.ResourceVersion != got.Metadata.ResourceVersion || revision(t, s) != rev {
			t.Errorf("repeated move = %+v, %v; want no write", again, err)
		}
		if _, err := s.SetSiteOrg(ctx, "nosuch.example.com", "beta"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("move unknown site: err = %v, want ErrNotFound", err)
		}
		if _, err := s.SetSiteOrg(ctx, "a2.example.com", "nobody"); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("move to unknown org: err = %v, want ErrInvalid", err)
		}
		if revision(t, s) != rev {
			t.Errorf("refused moves moved the revision")
		}
	})
}

func testUsers(t *testing.T, h *harness) {
	s := h.fresh(t)
	ctx := t.Context()
	full := newUser("usr-full")
	full.OIDCIssuer, full.OIDCSubject = "https://idp.example", "sub-1"
	full.PlatformRole = store.RoleOperator
	want := *full
	want.Email = "usr-full@example.com"
	mustCreateUser(t, s, full)
	if full.Email != want.Email {
		t.Errorf("create left email %q, want it lowercased", full.Email)
	}
	check := func(what string, got *store.User, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		assertSameJSON(t, what, got, &want)
		if got.PasswordHash != want.PasswordHash {
			t.Errorf("%s: password hash %q, want %q", what, got.PasswordHash, want.PasswordHash)
		}
	}
	u, err := s.GetUser(ctx, "usr-full")
	check("get", u, err)
	u, err = s.GetUserByEmail(ctx, "USR-Full@Example.com")
	check("by email", u, err)
	u, err = s.GetUserByOIDC(ctx, "https://idp.example", "sub-1")
	check("by oidc", u, err)
	mustCreateUser(t, s, &store.User{ID: "usr-min", Email: "min@example.com", CreatedAt: base})

	for _, tc := range []struct {
		name   string
		mutate func(*store.User)
		want   error
	}{
		{"same id", func(u *store.User) { u.ID = "usr-full" }, store.ErrAlreadyExists},
		{"same email other case", func(u *store.User) { u.Email = "MIN@example.com" }, store.ErrAlreadyExists},
		{"same oidc", func(u *store.User) { u.OIDCIssuer, u.OIDCSubject = "https://idp.example", "sub-1" }, store.ErrAlreadyExists},
		{"no id", func(u *store.User) { u.ID = "" }, store.ErrInvalid},
		{"bad email", func(u *store.User) { u.Email = "not an email" }, store.ErrInvalid},
		{"display name email", func(u *store.User) { u.Email = "Bob <bob@example.com>" }, store.ErrInvalid},
		{"no email", func(u *store.User) { u.Email = "" }, store.ErrInvalid},
		{"zero created_at", func(u *store.User) { u.CreatedAt = time.Time{} }, store.ErrInvalid},
		{"bad platform role", func(u *store.User) { u.PlatformRole = store.RoleShard }, store.ErrInvalid},
		{"issuer alone", func(u *store.User) { u.OIDCIssuer = "https://idp.example" }, store.ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := newUser("usr-" + strings.ReplaceAll(tc.name, " ", "-"))
			tc.mutate(u)
			if err := s.CreateUser(ctx, u); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if u.ID != "" && u.ID != "usr-full" {
				if _, err := s.GetUser(ctx, u.ID); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("refused user stored: %v", err)
				}
			}
		})
	}
	t.Run("same subject other issuer", func(t *testing.T) {
		u := newUser("usr-other-idp")
		u.OIDCIssuer, u.OIDCSubject = "https://other.example", "sub-1"
		mustCreateUser(t, s, u)
	})
	for _, tc := range []struct{ name, a, b string }{{"id", "usr-nobody", ""}, {"email", "", "nobody@example.com"}} {
		var err error
		if tc.a != "" {
			_, err = s.GetUser(ctx, tc.a)
		} else {
			_, err = s.GetUserByEmail(ctx, tc.b)
		}
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("get unknown by %s: err = %v", tc.name, err)
		}
	}
	if _, err := s.GetUserByOIDC(ctx, "", ""); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("get by empty oidc identity: err = %v, want ErrNotFound", err)
	}
}

func testUserUpdate(t *testing.T, h *harness) {
	s := h.fresh(t)
	ctx := t.Context()
	mustCreateUser(t, s, newUser("usr-other"))
	for _, tc := range []struct {
		name    string
		mutate  func(*store.User)
		wantErr error
	}{
		{"password", func(u *store.User) { u.PasswordHash = "$argon2id$new" }, nil},
		{"lock out", func(u *store.User) { u.FailedLogins = 5; l := base.Add(time.Hour); u.LockedUntil = &l }, nil},
		{"unlock", func(u *store.User) { u.FailedLogins = 0; u.LockedUntil = nil }, nil},
		{"email", func(u *store.User) { u.Email = "New@Example.com" }, nil},
		{"oidc link", func(u *store.User) { u.OIDCIssuer, u.OIDCSubject = "https://idp.example", "s" }, nil},
		{"role and disable", func(u *store.User) { u.PlatformRole = store.RoleSupport; u.Disabled = true }, nil},
		{"nothing", func(*store.User) {}, nil},
		{"id", func(u *store.User) { u.ID = "usr-renamed" }, store.ErrInvalid},
		{"created_at", func(u *store.User) { u.CreatedAt = u.CreatedAt.Add(time.Second) }, store.ErrInvalid},
		{"bad email", func(u *store.User) { u.Email = "nope" }, store.ErrInvalid},
		{"bad role", func(u *store.User) { u.PlatformRole = "root" }, store.ErrInvalid},
		{"taken email", func(u *store.User) { u.Email = "USR-OTHER@example.com"; u.Name = "x" }, store.ErrAlreadyExists},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := "usr-" + strings.ReplaceAll(tc.name, " ", "-")
			mustCreateUser(t, s, newUser(id))
			before, err := s.GetUser(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			want := *before
			tc.mutate(&want)
			want.Email = strings.ToLower(want.Email)
			got, err := s.UpdateUser(ctx, id, func(u *store.User) error { tc.mutate(u); return nil })
			stored, gerr := s.GetUser(ctx, id)
			if gerr != nil {
				t.Fatal(gerr)
			}
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				assertSameJSON(t, "refused update stored", stored, before)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			assertSameJSON(t, "returned user", got, &want)
			assertSameJSON(t, "stored user", stored, &want)
			if stored.PasswordHash != want.PasswordHash {
				t.Errorf("password hash %q, want %q", stored.PasswordHash, want.PasswordHash)
			}
		})
	}
	t.Run("found by new email and identity", func(t *testing.T) {
		if u, err := s.GetUserByEmail(ctx, "new@example.com"); err != nil || u.ID != "usr-email" {
			t.Errorf("by new email = %v, %v", u, err)
		}
		if _, err := s.GetUserByEmail(ctx, "usr-email@example.com"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("old email still finds the user: %v", err)
		}
		if u, err := s.GetUserByOIDC(ctx, "https://idp.example", "s"); err != nil || u.ID != "usr-oidc-link" {
			t.Errorf("by oidc = %v, %v", u, err)
		}
	})
	t.Run("mutate error and unknown", func(t *testing.T) {
		boom := errors.New("boom")
		if _, err := s.UpdateUser(ctx, "usr-other", func(*store.User) error { return boom }); err != boom { //nolint:errorlint // identity
			t.Errorf("err = %v, want mutate's error as is", err)
		}
		if _, err := s.UpdateUser(ctx, "usr-nobody", func(*store.User) error { return nil }); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("unknown: err = %v, want ErrNotFound", err)
		}
	})
}

func testUserListDelete(t *testing.T, h *harness) {
	s := h.fresh(t)
	ctx := t.Context()
	mustCreateOrg(t, s, newOrg("acme"))
	for _, id := range []string{"usr-c", "usr-a", "usr-d", "usr-b"} {
		mustCreateUser(t, s, newUser(id))
	}
	for _, id := range []string{"usr-b", "usr-d"} {
		if err := s.PutMembership(ctx, store.Membership{Org: "acme", UserID: id, Role: store.OrgDeveloper, CreatedAt: base}); err != nil {
			t.Fatal(err)
		}
	}
	ids := func(opts store.UserListOptions) (out []string) {
		t.Helper()
		for pages := 0; ; pages++ {
			l, err := s.ListUsers(ctx, opts)
			if err != nil {
				t.Fatal(err)
			}
			for _, u := range l.Items {
				out = append(out, u.ID)
				if u.PasswordHash == "" && u.ID != store.BootstrapUserID {
					t.Errorf("listed user %q without its password hash", u.ID)
				}
			}
			if l.Continue == "" || pages > 20 {
				return out
			}
			opts.Continue = l.Continue
		}
	}
	if got, want := ids(store.UserListOptions{Limit: 2}), []string{"usr-a", "usr-admin", "usr-b", "usr-c", "usr-d"}; !slices.Equal(got, want) {
		t.Errorf("all users = %v, want %v", got, want)
	}
	if got, want := ids(store.UserListOptions{Org: "acme", Limit: 1}), []string{"usr-b", "usr-d"}; !slices.Equal(got, want) {
		t.Errorf("acme's users = %v, want %v", got, want)
	}
	if got := ids(store.UserListOptions{Org: "nobody"}); len(got) != 0 {
		t.Errorf("unknown org's users = %v", got)
	}
	if _, err := s.ListUsers(ctx, store.UserListOptions{Continue: "@@"}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("bad continue: err = %v", err)
	}

	// Deleting usr-b takes its memberships, tokens and reset tokens along.
	tok := newToken("tok-b", "b")
	tok.UserID = "usr-b"
	other := newToken("tok-d", "d")
	other.UserID = "usr-d"
	for _, tk := range []store.Token{tok, other} {
		if err := s.CreateToken(ctx, tk); err != nil {
			t.Fatal(err)
		}
	}
	rt := store.ResetToken{Hash: store.TokenHash("reset-b"), UserID: "usr-b", CreatedAt: base, ExpiresAt: base.Add(time.Hour)}
	if err := s.CreateResetToken(ctx, rt); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteUser(ctx, "usr-b"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetUser(ctx, "usr-b"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("deleted user: err = %v", err)
	}
	if ms, err := s.ListMemberships(ctx, store.MembershipFilter{Org: "acme"}); err != nil || len(ms) != 1 || ms[0].UserID != "usr-d" {
		t.Errorf("memberships after delete = %+v, %v", ms, err)
	}
	if _, err := s.LookupToken(ctx, tok.Hash); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("deleted user's token: err = %v", err)
	}
	if _, err := s.LookupToken(ctx, other.Hash); err != nil {
		t.Errorf("another user's token went too: %v", err)
	}
	if _, err := s.UseResetToken(ctx, rt.Hash, base); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("deleted user's reset token: err = %v", err)
	}
	if err := s.DeleteUser(ctx, "usr-b"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second delete: err = %v", err)
	}
	// The email is free again.
	mustCreateUser(t, s, newUser("usr-b"))
}

func testMemberships(t *testing.T, h *harness) {
	s := h.fresh(t)
	ctx := t.Context()
	mustCreateOrg(t, s, newOrg("acme"))
	mustCreateOrg(t, s, newOrg("beta"))
	mustCreateUser(t, s, newUser("usr-1"))
	mustCreateUser(t, s, newUser("usr-2"))
	for _, tc := range []struct {
		name string
		m    store.Membership
		want error
	}{
		{"unknown org", store.Membership{Org: "nobody", UserID: "usr-1", Role: store.OrgOwner, CreatedAt: base}, store.ErrNotFound},
		{"unknown user", store.Membership{Org: "acme", UserID: "usr-x", Role: store.OrgOwner, CreatedAt: base}, store.ErrNotFound},
		{"bad role", store.Membership{Org: "acme", UserID: "usr-1", Role: "admin", CreatedAt: base}, store.ErrInvalid},
		{"no created_at", store.Membership{Org: "acme", UserID: "usr-1", Role: store.OrgOwner}, store.ErrInvalid},
		{"empty user", store.Membership{Org: "acme", Role: store.OrgOwner, CreatedAt: base}, store.ErrInvalid},
	} {
		if err := s.PutMembership(ctx, tc.m); !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
	}
	put := func(org, user string, role store.OrgRole, at time.Time) {
		t.Helper()
		if err := s.PutMembership(ctx, store.Membership{Org: org, UserID: user, Role: role, CreatedAt: at}); err != nil {
			t.Fatal(err)
		}
	}
	put("beta", "usr-2", store.OrgBilling, base)
	put("acme", "usr-2", store.OrgViewer, base)
	put("acme", "usr-1", store.OrgOwner, base)
	put("acme", "usr-2", store.OrgDeveloper, base.Add(time.Hour)) // replaces, keeps the first CreatedAt
	list := func(f store.MembershipFilter) string {
		t.Helper()
		ms, err := s.ListMemberships(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		var b []string
		for _, m := range ms {
			if m.Org != store.DefaultOrg && !m.CreatedAt.Equal(base) {
				t.Errorf("%s/%s created_at %v, want %v", m.Org, m.UserID, m.CreatedAt, base)
			}
			b = append(b, fmt.Sprintf("%s/%s=%s", m.Org, m.UserID, m.Role))
		}
		return strings.Join(b, " ")
	}
	for _, tc := range []struct {
		f    store.MembershipFilter
		want string
	}{
		{store.MembershipFilter{Org: "acme"}, "acme/usr-1=owner acme/usr-2=developer"},
		{store.MembershipFilter{UserID: "usr-2"}, "acme/usr-2=developer beta/usr-2=billing"},
		{store.MembershipFilter{Org: "beta", UserID: "usr-2"}, "beta/usr-2=billing"},
		{store.MembershipFilter{Org: "beta", UserID: "usr-1"}, ""},
	} {
		if got := list(tc.f); got != tc.want {
			t.Errorf("list %+v = %q, want %q", tc.f, got, tc.want)
		}
	}
	if got := list(store.MembershipFilter{}); !strings.HasPrefix(got, "acme/usr-1=owner acme/usr-2=developer beta/usr-2=billing") {
		t.Errorf("all memberships = %q", got)
	}
	if err := s.DeleteMembership(ctx, "acme", "usr-2"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteMembership(ctx, "acme", "usr-2"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second delete: err = %v, want ErrNotFound", err)
	}
	if got := list(store.MembershipFilter{Org: "acme"}); got != "acme/usr-1=owner" {
		t.Errorf("after delete = %q", got)
	}
}

func newInvite(id, org, secret string) store.Invite {
	return store.Invite{ID: id, Org: org, Email: "Invitee+" + id + "@Example.com", Role: store.OrgDeveloper, Hash: store.TokenHash(secret),
		CreatedBy: "usr-admin", CreatedAt: base, ExpiresAt: base.Add(72 * time.Hour)}
}

func testInvites(t *testing.T, h *harness) {
	s := h.fresh(t)
	ctx := t.Context()
	mustCreateOrg(t, s, newOrg("acme"))
	inv := newInvite("inv-b", "acme", "secret-b")
	for _, i := range []store.Invite{inv, newInvite("inv-a", "acme", "secret-a"), newInvite("inv-c", store.DefaultOrg, "secret-c")} {
		if err := s.CreateInvite(ctx, i); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name   string
		mutate func(*store.Invite)
		want   error
	}{
		{"same id", func(i *store.Invite) { i.ID = "inv-b" }, store.ErrAlreadyExists},
		{"same hash", func(i *store.Invite) { i.Hash = inv.Hash }, store.ErrAlreadyExists},
		{"plain secret", func(i *store.Invite) { i.Hash = "secret" }, store.ErrInvalid},
		{"bad role", func(i *store.Invite) { i.Role = "admin" }, store.ErrInvalid},
		{"bad email", func(i *store.Invite) { i.Email = "nope" }, store.ErrInvalid},
		{"no expiry", func(i *store.Invite) { i.ExpiresAt = time.Time{} }, store.ErrInvalid},
		{"no id", func(i *store.Invite) { i.ID = "" }, store.ErrInvalid},
		{"unknown org", func(i *store.Invite) { i.Org = "nobody" }, store.ErrNotFound},
	} {
		i := newInvite("inv-x", "acme", "secret-x")
		tc.mutate(&i)
		if err := s.CreateInvite(ctx, i); !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
	}
	got, err := s.ListInvites(ctx, "acme")
	if err != nil || len(got) != 2 || got[0].ID != "inv-a" || got[1].ID != "inv-b" {
		t.Fatalf("acme's invites = %+v, %v", got, err)
	}
	want := inv
	want.Email = strings.ToLower(inv.Email)
	if g := got[1]; g.Org != want.Org || g.Email != want.Email || g.Role != want.Role || g.Hash != want.Hash || g.CreatedBy != want.CreatedBy ||
		!g.CreatedAt.Equal(want.CreatedAt) || !g.ExpiresAt.Equal(want.ExpiresAt) || g.AcceptedAt != nil {
		t.Errorf("invite = %+v, want %+v", g, want)
	}

	t.Run("accept", func(t *testing.T) {
		if _, err := s.AcceptInvite(ctx, store.TokenHash("never"), base); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("unknown: err = %v, want ErrNotFound", err)
		}
		if _, err := s.AcceptInvite(ctx, inv.Hash, inv.ExpiresAt); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("at expiry: err = %v, want ErrNotFound", err)
		}
		at := inv.ExpiresAt.Add(-time.Microsecond)
		got, err := s.AcceptInvite(ctx, inv.Hash, at)
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != inv.ID || got.AcceptedAt == nil || !got.AcceptedAt.Equal(at) || got.Role != inv.Role {
			t.Errorf("accepted = %+v", got)
		}
		if _, err := s.AcceptInvite(ctx, inv.Hash, at); !errors.Is(err, store.ErrConflict) {
			t.Errorf("second accept: err = %v, want ErrConflict", err)
		}
		l, err := s.ListInvites(ctx, "acme")
		if err != nil || l[1].AcceptedAt == nil || !l[1].AcceptedAt.Equal(at) {
			t.Errorf("listed after accept = %+v, %v", l, err)
		}
	})
	t.Run("concurrent accept", func(t *testing.T) {
		i := newInvite("inv-race", "acme", "secret-race")
		if err := s.CreateInvite(ctx, i); err != nil {
			t.Fatal(err)
		}
		wins, conflicts := raceOnce(8, func() error { _, err := s.AcceptInvite(ctx, i.Hash, base); return err })
		if wins != 1 || conflicts != 7 {
			t.Errorf("%d accepts won and %d conflicted, want 1 and 7", wins, conflicts)
		}
	})
	t.Run("delete", func(t *testing.T) {
		if err := s.DeleteInvite(ctx, "inv-a"); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteInvite(ctx, "inv-a"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("second delete: err = %v", err)
		}
		if _, err := s.AcceptInvite(ctx, store.TokenHash("secret-a"), base); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("accept deleted: err = %v", err)
		}
	})
}

// raceOnce runs fn n times at once and counts the calls that succeeded and
// those that failed with ErrConflict or ErrNotFound.
func raceOnce(n int, fn func() error) (wins, losses int) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range n {
		wg.Go(func() {
			<-start
			err := fn()
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
			case errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrNotFound):
				losses++
			}
		})
	}
	close(start)
	wg.Wait()
	return wins, losses
}

func testResetTokens(t *testing.T, h *harness) {
	s := h.fresh(t)
	ctx := t.Context()
	mustCreateUser(t, s, newUser("usr-1"))
	rt := store.ResetToken{Hash: store.TokenHash("reset"), UserID: "usr-1", CreatedAt: base, ExpiresAt: base.Add(time.Hour)}
	if err := s.CreateResetToken(ctx, rt); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		rt   store.ResetToken
		want error
	}{
		{"same hash", rt, store.ErrAlreadyExists},
		{"plain secret", store.ResetToken{Hash: "reset", UserID: "usr-1", CreatedAt: base, ExpiresAt: base}, store.ErrInvalid},
		{"no user", store.ResetToken{Hash: store.TokenHash("x"), CreatedAt: base, ExpiresAt: base}, store.ErrInvalid},
		{"no expiry", store.ResetToken{Hash: store.TokenHash("x"), UserID: "usr-1", CreatedAt: base}, store.ErrInvalid},
		{"unknown user", store.ResetToken{Hash: store.TokenHash("x"), UserID: "usr-x", CreatedAt: base, ExpiresAt: base}, store.ErrNotFound},
	} {
		if err := s.CreateResetToken(ctx, tc.rt); !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, err := s.UseResetToken(ctx, store.TokenHash("never"), base); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown: err = %v", err)
	}
	if _, err := s.UseResetToken(ctx, rt.Hash, rt.ExpiresAt); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("at expiry: err = %v", err)
	}
	at := base.Add(time.Minute)
	got, err := s.UseResetToken(ctx, rt.Hash, at)
	if err != nil {
		t.Fatal(err)
	}
	if got.UserID != "usr-1" || got.UsedAt == nil || !got.UsedAt.Equal(at) || !got.ExpiresAt.Equal(rt.ExpiresAt) || !got.CreatedAt.Equal(base) {
		t.Errorf("used = %+v", got)
	}
	if _, err := s.UseResetToken(ctx, rt.Hash, at); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second use: err = %v, want ErrNotFound", err)
	}
	race := store.ResetToken{Hash: store.TokenHash("race"), UserID: "usr-1", CreatedAt: base, ExpiresAt: base.Add(time.Hour)}
	if err := s.CreateResetToken(ctx, race); err != nil {
		t.Fatal(err)
	}
	if wins, losses := raceOnce(8, func() error { _, err := s.UseResetToken(ctx, race.Hash, base); return err }); wins != 1 || losses != 7 {
		t.Errorf("%d uses won and %d lost, want 1 and 7", wins, losses)
	}
}

func testTokenScope(t *testing.T, h *harness) {
	s := h.fresh(t)
	ctx := t.Context()
	mustCreateOrg(t, s, newOrg("acme"))
	mustCreateUser(t, s, newUser("usr-1"))
	mustCreateUser(t, s, newUser("usr-2"))
	exp := base.Add(24 * time.Hour)
	used := base.Add(time.Minute)
	full := newToken("tok-full", "full")
	full.Kind, full.Prefix, full.UserID, full.Org, full.Role = store.TokenAPI, "aip_0123abcd", "usr-1", "acme", store.Role(store.OrgDeveloper)
	full.ExpiresAt, full.LastUsedAt, full.LastUsedIP, full.ReplacedBy = &exp, &used, "127.0.0.1", "tok-next"
	session := newToken("tok-session", "session")
	session.Kind, session.UserID, session.Role = store.TokenSession, "usr-1", store.RoleAdmin
	noKind := newToken("tok-nokind", "nokind")
	noKind.UserID = "usr-2"
	machine := newToken("tok-machine", "machine")
	machine.Role, machine.Subject = store.RoleShard, "shard-1"
	rev := revision(t, s)
	for _, tk := range []store.Token{full, session, noKind, machine} {
		if err := s.CreateToken(ctx, tk); err != nil {
			t.Fatalf("create %s: %v", tk.ID, err)
		}
	}
	noKind.Kind, machine.Kind = store.TokenAPI, store.TokenAPI // "" is stored as api
	t.Run("round trip", func(t *testing.T) {
		for _, want := range []store.Token{full, session, noKind, machine} {
			got, err := s.LookupToken(ctx, want.Hash)
			if err != nil {
				t.Fatal(err)
			}
			assertSameJSON(t, "lookup "+want.ID, got, &want)
			if got.Hash != want.Hash {
				t.Errorf("%s: hash %q", want.ID, got.Hash)
			}
		}
	})
	for _, tc := range []struct {
		name   string
		mutate func(*store.Token)
	}{
		{"bad kind", func(tk *store.Token) { tk.Kind = "cookie" }},
		{"org with platform role", func(tk *store.Token) { tk.Org = "acme"; tk.Role = store.RoleAdmin }},
		{"unknown org", func(tk *store.Token) { tk.Org = "nobody"; tk.Role = store.Role(store.OrgViewer) }},
		{"unknown user", func(tk *store.Token) { tk.UserID = "usr-nobody" }},
	} {
		tk := newToken("tok-bad", "bad")
		tc.mutate(&tk)
		if err := s.CreateToken(ctx, tk); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", tc.name, err)
		}
	}
	t.Run("list filters", func(t *testing.T) {
		for _, tc := range []struct {
			f    store.TokenFilter
			want string
		}{
			{store.TokenFilter{}, "tok-full tok-machine tok-nokind tok-session"},
			{store.TokenFilter{UserID: "usr-1"}, "tok-full tok-session"},
			{store.TokenFilter{Org: "acme"}, "tok-full"},
			{store.TokenFilter{Kind: store.TokenSession}, "tok-session"},
			{store.TokenFilter{Kind: store.TokenAPI}, "tok-full tok-machine tok-nokind"},
			{store.TokenFilter{UserID: "usr-1", Kind: store.TokenAPI}, "tok-full"},
			{store.TokenFilter{UserID: "usr-2", Org: "acme"}, ""},
			{store.TokenFilter{ID: "tok-session"}, "tok-session"},
			{store.TokenFilter{ID: "tok-session", Kind: store.TokenAPI}, ""},
			{store.TokenFilter{ID: "nope"}, ""},
		} {
			got, err := s.ListTokens(ctx, tc.f)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, g := range got {
				ids = append(ids, g.ID)
				if g.Hash != "" {
					t.Errorf("listed %s with its hash", g.ID)
				}
				if g.ID == "tok-full" {
					w := full
					w.Hash = ""
					assertSameJSON(t, "listed tok-full", g, &w)
				}
			}
			if s := strings.Join(ids, " "); s != tc.want {
				t.Errorf("list %+v = %q, want %q", tc.f, s, tc.want)
			}
		}
	})
	t.Run("update", func(t *testing.T) {
		overlap := base.Add(time.Hour)
		got, err := s.UpdateToken(ctx, "tok-session", func(tk *store.Token) error {
			tk.ReplacedBy, tk.ExpiresAt, tk.Name = "tok-new", &overlap, "renamed"
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		want := session
		want.ReplacedBy, want.ExpiresAt, want.Name = "tok-new", &overlap, "renamed"
		assertSameJSON(t, "returned", got, &want)
		stored, err := s.LookupToken(ctx, session.Hash)
		if err != nil {
			t.Fatal(err)
		}
		assertSameJSON(t, "stored", stored, &want)
		if _, err := s.UpdateToken(ctx, "tok-session", func(*store.Token) error { return nil }); err != nil {
			t.Errorf("no-op update: %v", err)
		}
		for _, tc := range []struct {
			name   string
			mutate func(*store.Token)
			want   error
		}{
			{"id", func(tk *store.Token) { tk.ID = "other" }, store.ErrInvalid},
			{"hash", func(tk *store.Token) { tk.Hash = store.TokenHash("other") }, store.ErrInvalid},
			{"created_at", func(tk *store.Token) { tk.CreatedAt = tk.CreatedAt.Add(time.Second) }, store.ErrInvalid},
			{"bad kind", func(tk *store.Token) { tk.Kind = "x" }, store.ErrInvalid},
			{"unknown user", func(tk *store.Token) { tk.UserID = "usr-nobody" }, store.ErrInvalid},
			{"scope to org with platform role", func(tk *store.Token) { tk.Org = "acme" }, store.ErrInvalid},
		} {
			if _, err := s.UpdateToken(ctx, "tok-session", func(tk *store.Token) error { tc.mutate(tk); tk.Name = "changed"; return nil }); !errors.Is(err, tc.want) {
				t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
			}
		}
		if again, err := s.LookupToken(ctx, session.Hash); err != nil || again.Name != "renamed" {
			t.Errorf("refused updates wrote: %+v, %v", again, err)
		}
		boom := errors.New("boom")
		if _, err := s.UpdateToken(ctx, "tok-session", func(*store.Token) error { return boom }); err != boom { //nolint:errorlint // identity
			t.Errorf("mutate error: err = %v", err)
		}
		if _, err := s.UpdateToken(ctx, "tok-nobody", func(*store.Token) error { return nil }); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("unknown: err = %v", err)
		}
	})
	t.Run("touch", func(t *testing.T) {
		at := base.Add(2 * time.Hour).In(time.FixedZone("X", 3600))
		if err := s.TouchToken(ctx, "tok-nokind", at, "::1"); err != nil {
			t.Fatal(err)
		}
		got, err := s.LookupToken(ctx, noKind.Hash)
		if err != nil || got.LastUsedAt == nil || !got.LastUsedAt.Equal(at) || got.LastUsedIP != "::1" || got.Name != noKind.Name {
			t.Errorf("touched = %+v, %v", got, err)
		}
		if err := s.TouchToken(ctx, "tok-nobody", at, "::1"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("touch unknown: err = %v", err)
		}
	})
	t.Run("delete tokens", func(t *testing.T) {
		if _, err := s.DeleteTokens(ctx, store.TokenFilter{}); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("empty filter: err = %v, want ErrInvalid", err)
		}
		if n, err := s.DeleteTokens(ctx, store.TokenFilter{UserID: "usr-1", Kind: store.TokenSession}); err != nil || n != 1 {
			t.Errorf("delete usr-1's sessions = %d, %v; want 1", n, err)
		}
		if n, err := s.DeleteTokens(ctx, store.TokenFilter{UserID: "usr-1"}); err != nil || n != 1 {
			t.Errorf("delete usr-1's tokens = %d, %v; want 1", n, err)
		}
		if n, err := s.DeleteTokens(ctx, store.TokenFilter{UserID: "usr-1"}); err != nil || n != 0 {
			t.Errorf("delete again = %d, %v; want 0", n, err)
		}
		got, err := s.ListTokens(ctx, store.TokenFilter{})
		if err != nil || len(got) != 2 || got[0].ID != "tok-machine" || got[1].ID != "tok-nokind" {
			t.Errorf("left = %+v, %v", got, err)
		}
	})
	if after := revision(t, s); after != rev {
		t.Errorf("token writes moved the revision %d -> %d", rev, after)
	}
}

func testAccountsReopen(t *testing.T, h *harness) {
	dir := t.TempDir()
	ctx := t.Context()
	s := h.open(t, dir)
	o := newOrg("acme")
	if err := s.CreateOrg(ctx, o); err != nil {
		t.Fatal(err)
	}
	u := newUser("usr-1")
	if err := s.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	if err := s.PutMembership(ctx, store.Membership{Org: "acme", UserID: "usr-1", Role: store.OrgOwner, CreatedAt: base}); err != nil {
		t.Fatal(err)
	}
	st := newSite("a.example.com")
	st.Metadata.Org = "acme"
	if err := s.CreateSite(ctx, st); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = h.openAt(t, dir)
	got, err := s.GetOrg(ctx, "acme")
	if err != nil || got.ResourceVersion != o.ResourceVersion || got.Branding != o.Branding {
		t.Errorf("org after reopen = %+v, %v", got, err)
	}
	if gu, err := s.GetUser(ctx, "usr-1"); err != nil || gu.PasswordHash != u.PasswordHash || gu.Email != u.Email {
		t.Errorf("user after reopen = %+v, %v", gu, err)
	}
	if ms, err := s.ListMemberships(ctx, store.MembershipFilter{Org: "acme"}); err != nil || len(ms) != 1 {
		t.Errorf("memberships after reopen = %+v, %v", ms, err)
	}
	if n, err := s.CountSites(ctx, "acme"); err != nil || n != 1 {
		t.Errorf("sites of acme after reopen = %d, %v", n, err)
	}
}
