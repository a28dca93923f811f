package sqlite

import (
	"io/fs"
	"path/filepath"
	"testing"
	"time"

	"github.com/pressly/goose/v3"

	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
)

// TestMigrateToAccounts opens a database made by the migrations up to 00004
// (before accounts), with a site, an admin and a viewer token in it: after
// 00005 the site belongs to the default organisation, the admin token to
// the bootstrap admin, who owns that organisation, and the viewer token to
// nobody. Then 00005 goes down and up again, keeping the data.
func TestMigrateToAccounts(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "aipress.db")
	db, err := openDB(ctx, path, false)
	if err != nil {
		t.Fatal(err)
	}
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, db, fsys, goose.WithDisableGlobalRegistry(true))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(ctx, 4); err != nil {
		t.Fatal(err)
	}
	old := &site.Site{Metadata: site.Metadata{Name: "a.example.com", UID: "u1", Generation: 1, ResourceVersion: 1, CreatedAt: time.Now().UTC()},
		Status: site.Status{Shard: "shard-a"}}
	md, sp, st, err := store.EncodeSite(old)
	if err != nil {
		t.Fatal(err)
	}
	adminHash, viewerHash := store.TokenHash("admin-secret"), store.TokenHash("viewer-secret")
	now := time.Now().UTC().Format(timeFormat)
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO sites (name, uid, shard, resource_version, metadata, spec, status) VALUES (?, ?, ?, 1, ?, ?, ?)`,
			[]any{"a.example.com", "u1", "shard-a", string(md), string(sp), string(st)}},
		{`UPDATE meta SET value = 1 WHERE key = 'revision'`, nil},
		{`INSERT INTO tokens (id, name, role, hash, created_at) VALUES ('tok-admin', 'admin', 'admin', ?, ?)`, []any{adminHash, now}},
		{`INSERT INTO tokens (id, name, role, hash, created_at) VALUES ('tok-viewer', 'viewer', 'viewer', ?, ?)`, []any{viewerHash, now}},
	} {
		if _, err := db.ExecContext(ctx, q.sql, q.args...); err != nil {
			t.Fatalf("%s: %v", q.sql, err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	check := func(t *testing.T) {
		t.Helper()
		s, err := Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		got, err := s.GetSite(ctx, "a.example.com")
		if err != nil || got.Metadata.Org != store.DefaultOrg || got.Metadata.ResourceVersion != 1 {
			t.Errorf("site after migration = %+v, %v; want it in org %q at resource version 1", got, err, store.DefaultOrg)
		}
		if l, err := s.ListSites(ctx, store.ListOptions{Orgs: []string{store.DefaultOrg}}); err != nil || len(l.Items) != 1 || l.Revision != 1 {
			t.Errorf("default org's sites = %+v, %v; want the site at revision 1 (the migration takes none)", l, err)
		}
		if n, err := s.CountSites(ctx, store.DefaultOrg); err != nil || n != 1 {
			t.Errorf("default org counts %d sites, %v", n, err)
		}
		org, err := s.GetOrg(ctx, store.DefaultOrg)
		if err != nil || org.Kind != store.OrgCustomer || org.Plan != "" || org.CreatedAt.IsZero() {
			t.Errorf("default org = %+v, %v", org, err)
		}
		u, err := s.GetUser(ctx, store.BootstrapUserID)
		if err != nil || u.Email != "admin@localhost" || u.PlatformRole != store.RoleAdmin || u.PasswordHash != "" || u.CreatedAt.IsZero() {
			t.Errorf("bootstrap user = %+v, %v", u, err)
		}
		ms, err := s.ListMemberships(ctx, store.MembershipFilter{})
		if err != nil || len(ms) != 1 || ms[0].Org != store.DefaultOrg || ms[0].UserID != store.BootstrapUserID || ms[0].Role != store.OrgOwner {
			t.Errorf("memberships = %+v, %v; want the bootstrap admin owning the default org", ms, err)
		}
		admin, err := s.LookupToken(ctx, adminHash)
		if err != nil || admin.UserID != store.BootstrapUserID || admin.Kind != store.TokenAPI || admin.Org != "" || admin.ExpiresAt != nil {
			t.Errorf("admin token = %+v, %v; want it owned by %s", admin, err, store.BootstrapUserID)
		}
		viewer, err := s.LookupToken(ctx, viewerHash)
		if err != nil || viewer.UserID != "" || viewer.Kind != store.TokenAPI || viewer.Role != store.RoleViewer {
			t.Errorf("viewer token = %+v, %v; want it owned by nobody", viewer, err)
		}
	}
	t.Run("up", check)

	t.Run("down and up again", func(t *testing.T) {
		db, err := openDB(ctx, path, false)
		if err != nil {
			t.Fatal(err)
		}
		p, err := goose.NewProvider(goose.DialectSQLite3, db, fsys, goose.WithDisableGlobalRegistry(true))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.DownTo(ctx, 4); err != nil {
			t.Fatalf("down to 4: %v", err)
		}
		var n int
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM sites`).Scan(&n); err != nil || n != 1 {
			t.Errorf("sites after down = %d, %v", n, err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		check(t)
	})
}
