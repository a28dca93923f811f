package api

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/gitsync"
	"github.com/aipress/aipress/internal/gitsync/gittest"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
)

const gitSiteFile = `apiVersion: aipress.dev/v1
kind: Site
metadata:
  name: code.example.com
  org: acme
spec:
  title: Code blog
  plan: basic
  admin: {email: me@example.com}
  themes:
    - {name: twentytwentythree, source: {type: bundled}, active: true}
  options:
    blogname: %s
`

// TestGitSyncThroughApply: an organisation's repository served over smart
// HTTP, synced by the poller through the API's own apply path: commit 1
// creates a site (bundled theme, an option), commit 2 changes the option,
// commit 3 has a bad field (the sync stops there with its position, the
// site keeps commit 2), commit 4 fixes it and is applied; every change is
// audited as git's; a change made outside git is drift.
func TestGitSyncThroughApply(t *testing.T) {
	e, m := gitEnv(t)
	ctx := context.Background()
	ap := GitApplier(Config{Store: e.store, Clock: func() time.Time { return testNow }, Placer: StaticPlacer("local")})
	probe := gitsync.ApplyRequest{Org: "acme", File: "probe.yaml", Doc: []byte(fmt.Sprintf(gitSiteFile, "Probe")), DryRun: true}
	if _, err := ap.Apply(ctx, probe); err != nil && strings.Contains(err.Error(), "not implemented") {
		t.Skip("applySiteFile is not implemented on this branch yet (part D)")
	}
	p, err := gitsync.NewPoller(gitsync.PollerConfig{Manager: m, Applier: ap, CacheDir: filepath.Join(t.TempDir(), "gitsync"), AllowPrivateNetworks: true})
	if err != nil {
		t.Fatal(err)
	}
	repo := gittest.New(t, "", "")
	tg := gitsync.Target{Kind: gitsync.KindOrg, Name: "acme"}
	sync := func() gitsync.Status {
		t.Helper()
		if err := p.Sync(ctx, tg); err != nil {
			t.Fatal(err)
		}
		v, err := m.Get(ctx, tg)
		if err != nil {
			t.Fatal(err)
		}
		return v.Status
	}
	blogname := func() string {
		t.Helper()
		st, err := e.store.GetSite(ctx, "code.example.com")
		if err != nil {
			t.Fatal(err)
		}
		return st.Spec.Options["blogname"]
	}

	c1 := repo.Commit("create the site", map[string]string{"sites/code.yaml": fmt.Sprintf(gitSiteFile, "One")})
	if _, err := m.Put(ctx, tg, "acme", gitsync.Config{URL: repo.URL, Path: "sites"}); err != nil {
		t.Fatal(err)
	}
	if st := sync(); st.LastError != nil || st.LastApplied == nil || st.LastApplied.Hash != c1 {
		t.Fatalf("after commit 1: %+v (error %+v)", st, st.LastError)
	}
	created, err := e.store.GetSite(ctx, "code.example.com")
	if err != nil {
		t.Fatal(err)
	}
	if created.Metadata.Org != "acme" || len(created.Spec.Themes) != 1 || created.Spec.Themes[0].Name != "twentytwentythree" ||
		created.Spec.Options["blogname"] != "One" {
		t.Fatalf("created site: %+v %+v", created.Metadata, created.Spec)
	}

	c2 := repo.Commit("rename", map[string]string{"sites/code.yaml": fmt.Sprintf(gitSiteFile, "Two")})
	if st := sync(); st.LastError != nil || st.LastApplied.Hash != c2 || blogname() != "Two" {
		t.Fatalf("after commit 2: %+v, blogname %q", st, blogname())
	}

	bad := strings.Replace(fmt.Sprintf(gitSiteFile, "Three"), "  plan: basic\n", "  plan: basic\n  colour: blue\n", 1)
	c3 := repo.Commit("a bad field", map[string]string{"sites/code.yaml": bad})
	st := sync()
	if st.LastApplied.Hash != c2 || st.LastError == nil || st.LastError.Commit != c3 || st.LastError.File != "sites/code.yaml" ||
		st.LastError.Line != 9 || st.LastError.Column != 3 || st.LastError.Message != `spec.colour: unknown field "colour"` {
		t.Fatalf("after the bad commit: %+v, error %+v", st, st.LastError)
	}
	if st.PendingCount != 1 || st.Pending[0].Hash != c3 {
		t.Errorf("pending %+v", st.Pending)
	}
	if blogname() != "Two" {
		t.Fatalf("the bad commit changed the site: blogname %q", blogname())
	}

	c4 := repo.Commit("fix", map[string]string{"sites/code.yaml": fmt.Sprintf(gitSiteFile, "Four")})
	if st := sync(); st.LastError != nil || st.LastApplied.Hash != c4 || st.PendingCount != 0 || blogname() != "Four" {
		t.Fatalf("after the fix: %+v (error %+v), blogname %q", st, st.LastError, blogname())
	}

	// Audited as git's, with the commit.
	entries, err := e.store.ListAudit(ctx, store.AuditListOptions{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var sources []string
	for _, en := range entries {
		if en.Action == "site.apply" && en.Outcome == "success" {
			if en.Channel != ChannelGit || en.Org != "acme" || en.Actor != "git-sync:acme" || en.Target != "code.example.com" {
				t.Errorf("audit entry %+v", en)
			}
			sources = append(sources, en.Detail)
		}
	}
	for _, c := range []string{c1, c2, c4} {
		if !strings.Contains(strings.Join(sources, "\n"), "git "+repo.URL+"@"+c) {
			t.Errorf("no audit entry of commit %s in %q", c, sources)
		}
	}
	if strings.Contains(strings.Join(sources, "\n"), c3) {
		t.Errorf("the bad commit was applied: %q", sources)
	}

	// A change made outside git is drift.
	if _, err := e.store.UpdateSite(ctx, "code.example.com", func(s *site.Site) error {
		s.Spec.Options["blogname"] = "By hand"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, d := range sync().Drift {
		found = found || (d.Site == "code.example.com" && d.Name == "blogname")
	}
	if !found {
		v, _ := m.Get(ctx, tg)
		t.Errorf("drift %+v lacks the option changed by hand", v.Status.Drift)
	}
}
