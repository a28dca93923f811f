// Package storetest is the contract suite for store.Store. Every
// implementation (SQLite, PostgreSQL) runs it from its own tests:
//
//	func TestContract(t *testing.T) {
//		storetest.Run(t, func(t *testing.T, dir string) store.Store {
//			s, err := sqlite.Open(t.Context(), filepath.Join(dir, "aipress.db"))
//			if err != nil {
//				t.Fatal(err)
//			}
//			return s
//		})
//	}
//
// The suite checks each bullet of the contract in store.Store's doc comment as
// a subtest. It uses no mocks: the store under test is real.
package storetest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
)

// Opener opens the store whose data is identified by dir. Opening the same
// dir again (after Close) must give the same data; a dir the suite has not
// used before must give an empty store. A file-based store keeps its files in
// dir (a fresh t.TempDir of the suite); a server-based one may derive a
// database or schema name from it. The suite closes every store it opens, and
// closes a store before reopening its dir.
type Opener func(t *testing.T, dir string) store.Store

// Run runs the contract suite against the stores open returns.
func Run(t *testing.T, open Opener) {
	h := &harness{open: open}
	tests := []struct {
		name string
		fn   func(t *testing.T, h *harness)
	}{
		{"CreateGetRoundTrip", testCreateGetRoundTrip},
		{"CreateDuplicate", testCreateDuplicate},
		{"CreateInvalid", testCreateInvalid},
		{"NotFound", testNotFound},
		{"Delete", testDelete},
		{"Generation", testGeneration},
		{"NoOpUpdate", testNoOpUpdate},
		{"MutateError", testMutateError},
		{"UpdateSites", testUpdateSites},
		{"ConcurrentUpdateSites", testConcurrentUpdateSites},
		{"Immutable", testImmutable},
		{"Revision", testRevision},
		{"Pagination", testPagination},
		{"ContinueInvalid", testContinueInvalid},
		{"ShardFilter", testShardFilter},
		{"ConcurrentUpdates", testConcurrentUpdates},
		{"ConcurrentCreateSameName", testConcurrentCreateSameName},
		{"Tokens", testTokens},
		{"Audit", testAudit},
		{"CreateSiteAudited", testCreateSiteAudited},
		{"AuditFilters", testAuditFilters},
		{"AuditConcurrent", testAuditConcurrent},
		{"AuditCheckpoints", testAuditCheckpoints},
		{"Reopen", testReopen},
		{"CanceledContext", testCanceledContext},
		{"ReadInsideMutate", testReadInsideMutate},
		{"Unplaced", testUnplaced},
		{"MoveRoundTrip", testMoveRoundTrip},
		{"MoveShards", testMoveShards},
		{"ShardCreateGet", testShardCreateGet},
		{"ShardNotFound", testShardNotFound},
		{"ShardUpdate", testShardUpdate},
		{"ShardHeartbeat", testShardHeartbeat},
		{"ShardDeleteList", testShardDeleteList},
		{"ConcurrentShardWrites", testConcurrentShardWrites},
		{"ChangesAll", testChangesAll},
		{"ChangesShard", testChangesShard},
		{"ChangesRecreate", testChangesRecreate},
		{"ChangesSince", testChangesSince},
		{"ChangesPages", testChangesPages},
		{"ChangesConcurrent", testChangesConcurrent},
		{"PruneTombstones", testPruneTombstones},
		{"ChangesReopen", testChangesReopen},
		{"TokenManagement", testTokenManagement},
		{"JobCreateGet", testJobCreateGet},
		{"JobNotFound", testJobNotFound},
		{"JobUpdate", testJobUpdate},
		{"JobList", testJobList},
		{"JobReopen", testJobReopen},
		{"WAFEvents", testWAFEvents},
		{"WAFEventsRetention", testWAFEventsRetention},
		{"WAFEventsInvalid", testWAFEventsInvalid},
		{"OrgCreateGet", testOrgCreateGet},
		{"OrgUpdate", testOrgUpdate},
		{"OrgDelete", testOrgDelete},
		{"OrgList", testOrgList},
		{"SiteOrg", testSiteOrg},
		{"Users", testUsers},
		{"UserUpdate", testUserUpdate},
		{"UserListDelete", testUserListDelete},
		{"Memberships", testMemberships},
		{"Invites", testInvites},
		{"ResetTokens", testResetTokens},
		{"TokenScope", testTokenScope},
		{"AccountsReopen", testAccountsReopen},
		{"Bandwidth", testBandwidth},
		{"Usage", testUsage},
		{"Settings", testSettings},
		{"Incidents", testIncidents},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, h)
		})
	}
}

type harness struct {
	open Opener
}

// openAt opens the store of dir and closes it when the test ends.
func (h *harness) openAt(t *testing.T, dir string) store.Store {
	t.Helper()
	s := h.open(t, dir)
	if s == nil {
		t.Fatal("open returned a nil store")
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

// fresh opens an empty store.
func (h *harness) fresh(t *testing.T) store.Store {
	t.Helper()
	return h.openAt(t, t.TempDir())
}

// base is the suite's reference time: UTC, whole microseconds, so that stores
// with microsecond precision (PostgreSQL) compare equal too.
var base = time.Date(2025, 3, 14, 15, 9, 26, 535897000, time.UTC)

// newSite returns a site with every field set.
func newSite(name string) *site.Site {
	return &site.Site{
		Metadata: site.Metadata{
			Name:      name,
			UID:       "uid-" + name,
			Labels:    map[string]string{"team": "blue", "tier": "gold"},
			CreatedAt: base,
		},
		Spec: site.Spec{
			Domain:      name,
			Title:       "Title of " + name,
			CoreVersion: "6.8.1",
			Plan:        "pro",
			Suspended:   false,
			PHP:         site.PHP{MaxChildren: 5, MemoryLimitMB: 256, UploadMaxMB: 64, IdleTimeoutSecond: 10},
			Admin:       site.Admin{User: "admin", Email: "admin@" + name, PasswordHash: "$2a$10$abcdefghijklmnopqrstuv"},
		},
		Status: site.Status{
			Phase:              site.PhaseReady,
			Shard:              "shard-1",
			URL:                "https://" + name,
			ObservedGeneration: 1,
			Conditions: []site.Condition{
				{Type: "Database", Status: "True", Reason: "Created", Message: "ok", ObservedGeneration: 1, LastTransitionTime: base.Add(time.Second)},
				{Type: "Ready", Status: "False", Reason: "Waiting", ObservedGeneration: 1, LastTransitionTime: base.Add(2 * time.Second)},
			},
			Endpoint: "unix:/run/aipress/" + name + ".sock",
			Docroot:  "/srv/sites/" + name,
		},
	}
}

// minimalSite returns a site with only the required fields set.
func minimalSite(name string) *site.Site {
	return &site.Site{Metadata: site.Metadata{Name: name, UID: "uid-" + name, CreatedAt: base}}
}

// canonical renders s for comparison: times in UTC, empty labels as none.
func canonical(t *testing.T, s *site.Site) string {
	t.Helper()
	c := *s
	c.Metadata.CreatedAt = c.Metadata.CreatedAt.UTC()
	if c.Metadata.DeletionRequested != nil {
		d := c.Metadata.DeletionRequested.UTC()
		c.Metadata.DeletionRequested = &d
	}
	if len(c.Metadata.Labels) == 0 {
		c.Metadata.Labels = nil
	}
	c.Status.Conditions = nil
	for _, cond := range s.Status.Conditions {
		cond.LastTransitionTime = cond.LastTransitionTime.UTC()
		c.Status.Conditions = append(c.Status.Conditions, cond)
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func assertSiteEqual(t *testing.T, got, want *site.Site) {
	t.Helper()
	if g, w := canonical(t, got), canonical(t, want); g != w {
		t.Errorf("site differs\ngot:  %s\nwant: %s", g, w)
	}
	if !got.Metadata.CreatedAt.Equal(want.Metadata.CreatedAt) {
		t.Errorf("created_at = %v, want %v", got.Metadata.CreatedAt, want.Metadata.CreatedAt)
	}
}

func mustCreate(t *testing.T, s store.Store, st *site.Site) *site.Site {
	t.Helper()
	if err := s.CreateSite(t.Context(), st); err != nil {
		t.Fatalf("create %q: %v", st.Metadata.Name, err)
	}
	return st
}

func mustGet(t *testing.T, s store.Store, name string) *site.Site {
	t.Helper()
	got, err := s.GetSite(t.Context(), name)
	if err != nil {
		t.Fatalf("get %q: %v", name, err)
	}
	return got
}

func revision(t *testing.T, s store.Store) int64 {
	t.Helper()
	l, err := s.ListSites(t.Context(), store.ListOptions{Limit: 1})
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	return l.Revision
}

func testCreateGetRoundTrip(t *testing.T, h *harness) {
	s := h.fresh(t)
	deletion := base.Add(time.Hour)
	withDeletion := newSite("deleting.example.com")
	withDeletion.Metadata.DeletionRequested = &deletion
	withDeletion.Status.Phase = site.PhaseDeleting
	callerGen := newSite("callergen.example.com")
	callerGen.Metadata.Generation = 7
	callerGen.Metadata.ResourceVersion = 99999

	for _, tc := range []struct {
		name string
		site *site.Site
	}{
		{"all fields", newSite("full.example.com")},
		{"minimal", minimalSite("min.example.com")},
		{"deletion requested", withDeletion},
		{"caller generation ignored", callerGen},
		{"unicode", newSite("xn--bcher-kva.example")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := *tc.site
			in := tc.site
			mustCreate(t, s, in)
			if in.Metadata.Generation != 1 {
				t.Errorf("create set generation %d, want 1", in.Metadata.Generation)
			}
			if in.Metadata.ResourceVersion <= 0 {
				t.Errorf("create set resource version %d, want > 0", in.Metadata.ResourceVersion)
			}
			if in.Metadata.Org != store.DefaultOrg {
				t.Errorf("create set org %q, want %q", in.Metadata.Org, store.DefaultOrg)
			}
			want.Metadata.Generation = 1
			want.Metadata.ResourceVersion = in.Metadata.ResourceVersion
			want.Metadata.Org = store.DefaultOrg // an empty Org is the default one
			got := mustGet(t, s, want.Metadata.Name)
			assertSiteEqual(t, got, &want)
			if want.Metadata.DeletionRequested != nil && !got.Metadata.DeletionRequested.Equal(*want.Metadata.DeletionRequested) {
				t.Errorf("deletion_requested = %v, want %v", got.Metadata.DeletionRequested, want.Metadata.DeletionRequested)
			}
			for i, c := range want.Status.Conditions {
				if !got.Status.Conditions[i].LastTransitionTime.Equal(c.LastTransitionTime) {
					t.Errorf("condition %d time = %v, want %v", i, got.Status.Conditions[i].LastTransitionTime, c.LastTransitionTime)
				}
			}
			// The returned value is a copy: changing it changes nothing stored.
			got.Spec.Title = "changed"
			if again := mustGet(t, s, want.Metadata.Name); again.Spec.Title != want.Spec.Title {
				t.Errorf("stored title changed through a returned value: %q", again.Spec.Title)
			}
		})
	}
}

func testCreateDuplicate(t *testing.T, h *harness) {
	s := h.fresh(t)
	ctx := t.Context()
	mustCreate(t, s, newSite("a.example.com"))
	deleting := mustCreate(t, s, newSite("deleting.example.com"))
	if _, err := s.UpdateSite(ctx, deleting.Metadata.Name, func(st *site.Site) error {
		d := base.Add(time.Minute)
		st.Metadata.DeletionRequested = &d
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	sameUID := newSite("b.example.com")
	sameUID.Metadata.UID = "uid-a.example.com"
	for _, tc := range []struct {
		name string
		site *site.Site
	}{
		{"same name", newSite("a.example.com")},
		{"same name other uid", func() *site.Site { x := newSite("a.example.com"); x.Metadata.UID = "other"; return x }()},
		{"deletion requested", newSite("deleting.example.com")},
		{"same uid", sameUID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := revision(t, s)
			err := s.CreateSite(ctx, tc.site)
			if !errors.Is(err, store.ErrAlreadyExists) {
				t.Fatalf("create duplicate: err = %v, want ErrAlreadyExists", err)
			}
			if after := revision(t, s); after != before {
				t.Errorf("failed create moved revision %d -> %d", before, after)
			}
		})
	}
	if _, err := s.GetSite(ctx, "b.example.com"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("site with duplicate uid stored: err = %v", err)
	}
	// The one being deleted counts until it is gone.
	if n, err := s.CountAllSites(ctx); err != nil || n != 2 {
		t.Errorf("CountAllSites = %d, %v; want 2", n, err)
	}
	if err := s.DeleteSite(ctx, deleting.Metadata.Name); err != nil {
		t.Fatal(err)
	}
	if n, err := s.CountAllSites(ctx); err != nil || n != 1 {
		t.Errorf("CountAllSites after a delete = %d, %v; want 1", n, err)
	}
}

func testCreateInvalid(t *testing.T, h *harness) {
	s := h.fresh(t)
	for _, tc := range []struct {
		name   string
		mutate func(*site.Site)
	}{
		{"empty name", func(x *site.Site) { x.Metadata.Name = "" }},
		{"empty uid", func(x *site.Site) { x.Metadata.UID = "" }},
		{"zero created_at", func(x *site.Site) { x.Metadata.CreatedAt = time.Time{} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := newSite("invalid.example.com")
			tc.mutate(x)
			if err := s.CreateSite(t.Context(), x); !errors.Is(err, store.ErrInvalid) {
				t.Errorf("err = %v, want ErrInvalid", err)
			}
		})
	}
	if l, err := s.ListSites(t.Context(), store.ListOptions{}); err != nil || len(l.Items) != 0 {
		t.Errorf("after invalid creates: %v items, err %v; want none", l, err)
	}
}

func testNotFound(t *testing.T, h *harness) {
	s := h.fresh(t)
	mustCreate(t, s, newSite("exists.example.com"))
	const unknown = "unknown.example.com"
	for _, tc := range []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"get", func(ctx context.Context) error { _, err := s.GetSite(ctx, unknown); return err }},
		{"update", func(ctx context.Context) error {
			_, err := s.UpdateSite(ctx, unknown, func(*site.Site) error {
				t.Error("mutate called for an unknown site")
				return nil
			})
			return err
		}},
		{"delete", func(ctx context.Context) error { return s.DeleteSite(ctx, unknown) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := revision(t, s)
			if err := tc.call(t.Context()); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("err = %v, want ErrNotFound", err)
			}
			if after := revision(t, s); after != before {
				t.Errorf("revision moved %d -> %d", before, after)
			}
		})
	}
}

func testDelete(t *testing.T, h *harness) {
	s := h.fresh(t)
	ctx := t.Context()
	mustCreate(t, s, newSite("a.example.com"))
	mustCreate(t, s, newSite("b.example.com"))
	before := revision(t, s)
	if err := s.DeleteSite(ctx, "a.example.com"); err != nil {
		t.Fatal(err)
	}
	if after := revision(t, s); after <= before {
		t.Errorf("delete did not advance revision: %d -> %d", before, after)
	}
	if _, err := s.GetSite(ctx, "a.example.com"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("get after delete: err = %v, want ErrNotFound", err)
	}
	if err := s.DeleteSite(ctx, "a.example.com"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second delete: err = %v, want ErrNotFound", err)
	}
	mustGet(t, s, "b.example.com")
	// The name is free again.
	again := mustCreate(t, s, newSite("a.example.com"))
	if again.Metadata.Generation != 1 {
		t.Errorf("re-created generation = %d, want 1", again.Metadata.Generation)
	}
}

func testGeneration(t *testing.T, h *harness) {
	s := h.fresh(t)
	for _, tc := range []struct {
		name    string
		mutate  func(*site.Site)
		wantGen bool
	}{
		{"spec title", func(x *site.Site) { x.Spec.Title = "new" }, true},
		{"spec suspended", func(x *site.Site) { x.Spec.Suspended = true }, true},
		{"spec php", func(x *site.Site) { x.Spec.PHP.MaxChildren++ }, true},
		{"spec admin", func(x *site.Site) { x.Spec.Admin.Email = "other@example.com" }, true},
		{"label added", func(x *site.Site) { x.Metadata.Labels["new"] = "x" }, true},
		{"label changed", func(x *site.Site) { x.Metadata.Labels["team"] = "red" }, true},
		{"labels removed", func(x *site.Site) { x.Metadata.Labels = nil }, true},
		{"deletion requested", func(x *site.Site) { d := base.Add(time.Hour); x.Metadata.DeletionRequested = &d }, true},
		{"deletion request moved", func(x *site.Site) {
			d := x.Metadata.DeletionRequested.Add(time.Hour)
			x.Metadata.DeletionRequested = &d
		}, true},
		{"deletion request withdrawn", func(x *site.Site) { x.Metadata.DeletionRequested = nil }, true},
		{"spec and status", func(x *site.Site) { x.Spec.Plan = "basic"; x.Status.Phase = site.PhaseCreating }, true},
		{"status phase", func(x *site.Site) { x.Status.Phase = site.PhaseFailed }, false},
		{"status shard", func(x *site.Site) { x.Status.Shard = "shard-9" }, false},
		{"status observed generation", func(x *site.Site) { x.Status.ObservedGeneration = 5 }, false},
		{"status condition", func(x *site.Site) {
			x.Status.SetCondition(site.Condition{Type: "Ready", Status: "True", ObservedGeneration: 1}, base.Add(time.Minute))
		}, false},
		{"status conditions cleared", func(x *site.Site) { x.Status.Conditions = nil }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := newSite(fmt.Sprintf("gen-%d.example.com", rand.Int64()))
			if strings.HasPrefix(tc.name, "deletion request ") {
				d := base.Add(time.Minute)
				start.Metadata.DeletionRequested = &d
			}
			created := mustCreate(t, s, start)
			name := created.Metadata.Name
			want := mustGet(t, s, name)
			tc.mutate(want)

			got, err := s.UpdateSite(t.Context(), name, func(x *site.Site) error { tc.mutate(x); return nil })
			if err != nil {
				t.Fatalf("update: %v", err)
			}
			wantGen := int64(1)
			if tc.wantGen {
				wantGen = 2
			}
			if got.Metadata.Generation != wantGen {
				t.Errorf("generation = %d, want %d", got.Metadata.Generation, wantGen)
			}
			if got.Metadata.ResourceVersion <= created.Metadata.ResourceVersion {
				t.Errorf("resource version %d did not advance from %d", got.Metadata.ResourceVersion, created.Metadata.ResourceVersion)
			}
			if rev := revision(t, s); got.Metadata.ResourceVersion != rev {
				t.Errorf("resource version %d, store revision %d: want equal", got.Metadata.ResourceVersion, rev)
			}
			want.Metadata.Generation = wantGen
			want.Metadata.ResourceVersion = got.Metadata.ResourceVersion
			assertSiteEqual(t, got, want)
			assertSiteEqual(t, mustGet(t, s, name), want)
		})
	}
}

func testNoOpUpdate(t *testing.T, h *harness) {
	s := h.fresh(t)
	for _, tc := range []struct {
		name   string
		site   *site.Site
		mutate func(*site.Site)
	}{
		{"nothing", newSite("a.example.com"), func(*site.Site) {}},
		{"same values", newSite("b.example.com"), func(x *site.Site) {
			x.Spec.Title = "Title of b.example.com"
			x.Status.Phase = site.PhaseReady
			x.Metadata.Labels["team"] = "blue"
		}},
		{"nil labels to empty", minimalSite("c.example.com"), func(x *site.Site) { x.Metadata.Labels = map[string]string{} }},
		{"store-owned fields", newSite("d.example.com"), func(x *site.Site) {
			x.Metadata.Generation = 42
			x.Metadata.ResourceVersion = 4242
		}},
		{"same condition", newSite("e.example.com"), func(x *site.Site) {
			c := *x.Status.Condition("Database")
			x.Status.SetCondition(c, base.Add(time.Hour))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mustCreate(t, s, tc.site)
			before := mustGet(t, s, tc.site.Metadata.Name)
			rev := revision(t, s)
			got, err := s.UpdateSite(t.Context(), tc.site.Metadata.Name, func(x *site.Site) error { tc.mutate(x); return nil })
			if err != nil {
				t.Fatalf("update: %v", err)
			}
			if got.Metadata.ResourceVersion != before.Metadata.ResourceVersion {
				t.Errorf("no-op update changed resource version %d -> %d", before.Metadata.ResourceVersion, got.Metadata.ResourceVersion)
			}
			if got.Metadata.Generation != before.Metadata.Generation {
				t.Errorf("no-op update changed generation %d -> %d", before.Metadata.Generation, got.Metadata.Generation)
			}
			if after := revision(t, s); after != rev {
				t.Errorf("no-op update moved revision %d -> %d", rev, after)
			}
			assertSiteEqual(t, got, before)
			assertSiteEqual(t, mustGet(t, s, tc.site.Metadata.Name), before)
		})
	}
}

func testMutateError(t *testing.T, h *harness) {
	s := h.fresh(t)
	created := mustCreate(t, s, newSite("a.example.com"))
	before := mustGet(t, s, created.Metadata.Name)
	rev := revision(t, s)
	sentinel := errors.New("mutate refused")
	got, err := s.UpdateSite(t.Context(), created.Metadata.Name, func(x *site.Site) error {
		x.Spec.Title = "half-done"
		x.Status.Phase = site.PhaseFailed
		return sentinel
	})
	if err != sentinel { //nolint:errorlint // the contract says "as is"
		t.Errorf("err = %v, want the mutate error as is", err)
	}
	if got != nil {
		t.Errorf("update returned %+v with an error", got)
	}
	if after := revision(t, s); after != rev {
		t.Errorf("failed mutate moved revision %d -> %d", rev, after)
	}
	assertSiteEqual(t, mustGet(t, s, created.Metadata.Name), before)
}

// testUpdateSites: each site of a batch follows UpdateSite's rules and
// takes its own revision; a site's own error (unknown, mutate's error, a
// forbidden change) skips only that site.
func testUpdateSites(t *testing.T, h *harness) {
	s := h.fresh(t)
	a := mustCreate(t, s, newSite("a.example.com"))
	b := mustCreate(t, s, newSite("b.example.com"))
	c := mustCreate(t, s, newSite("c.example.com"))
	d := mustCreate(t, s, newSite("d.example.com"))
	cBefore, dBefore := mustGet(t, s, c.Metadata.Name), mustGet(t, s, d.Metadata.Name)
	rev := revision(t, s)
	sentinel := errors.New("mutate refused")
	names := []string{"a.example.com", "unknown.example.com", "c.example.com", "d.example.com", "b.example.com"}
	var seen []string
	errs, err := s.UpdateSites(t.Context(), names, func(x *site.Site) error {
		seen = append(seen, x.Metadata.Name)
		switch x.Metadata.Name {
		case "c.example.com":
			x.Spec.Title = "half-done"
			return sentinel
		case "d.example.com":
			x.Metadata.UID = "another-uid"
			return nil
		}
		x.Status.Shard = "shard-2"
		return nil
	})
	if err != nil {
		t.Fatalf("UpdateSites: %v", err)
	}
	if want := []string{"a.example.com", "c.example.com", "d.example.com", "b.example.com"}; !slices.Equal(seen, want) {
		t.Errorf("mutate saw %v, want %v (in order, not the unknown one)", seen, want)
	}
	if len(errs) != len(names) {
		t.Fatalf("%d errors for %d names", len(errs), len(names))
	}
	if errs[0] != nil || errs[4] != nil {
		t.Errorf("errors of the written sites: %v, %v; want nil", errs[0], errs[4])
	}
	if !errors.Is(errs[1], store.ErrNotFound) {
		t.Errorf("unknown site: %v, want ErrNotFound", errs[1])
	}
	if errs[2] != sentinel { //nolint:errorlint // the contract says "as is"
		t.Errorf("mutate error: %v, want it as is", errs[2])
	}
	if !errors.Is(errs[3], store.ErrInvalid) {
		t.Errorf("changed UID: %v, want ErrInvalid", errs[3])
	}
	gotA, gotB := mustGet(t, s, a.Metadata.Name), mustGet(t, s, b.Metadata.Name)
	if gotA.Status.Shard != "shard-2" || gotB.Status.Shard != "shard-2" {
		t.Errorf("shards after the batch: %q, %q; want shard-2 both", gotA.Status.Shard, gotB.Status.Shard)
	}
	if gotA.Metadata.Generation != a.Metadata.Generation {
		t.Errorf("status-only change moved the generation %d -> %d", a.Metadata.Generation, gotA.Metadata.Generation)
	}
	// One revision per written site, in the batch's order.
	if gotA.Metadata.ResourceVersion != rev+1 || gotB.Metadata.ResourceVersion != rev+2 {
		t.Errorf("resource versions %d, %d; want %d, %d", gotA.Metadata.ResourceVersion, gotB.Metadata.ResourceVersion, rev+1, rev+2)
	}
	if after := revision(t, s); after != rev+2 {
		t.Errorf("revision %d -> %d, want +2", rev, after)
	}
	assertSiteEqual(t, mustGet(t, s, c.Metadata.Name), cBefore)
	assertSiteEqual(t, mustGet(t, s, d.Metadata.Name), dBefore)
	cl, err := s.Changes(t.Context(), rev, store.ChangeOptions{Shard: "shard-2"})
	if err != nil {
		t.Fatal(err)
	}
	var changed []string
	for _, x := range cl.Sites {
		changed = append(changed, x.Metadata.Name)
	}
	if want := []string{"a.example.com", "b.example.com"}; !slices.Equal(changed, want) {
		t.Errorf("shard-2's changes after the batch: %v, want %v", changed, want)
	}
	// A site named twice is updated twice, the second mutate seeing the
	// first's write.
	bump := func(x *site.Site) error { x.Status.ObservedGeneration++; return nil }
	og := mustGet(t, s, a.Metadata.Name).Status.ObservedGeneration
	if errs, err := s.UpdateSites(t.Context(), []string{a.Metadata.Name, b.Metadata.Name, a.Metadata.Name}, bump); err != nil || errors.Join(errs...) != nil {
		t.Fatalf("batch naming a site twice: %v, %v", errs, err)
	}
	if got := mustGet(t, s, a.Metadata.Name).Status.ObservedGeneration; got != og+2 {
		t.Errorf("a site named twice: observed generation %d -> %d, want +2", og, got)
	}
	// Nothing to do is no write.
	if errs, err := s.UpdateSites(t.Context(), nil, func(*site.Site) error { return nil }); err != nil || len(errs) != 0 {
		t.Errorf("empty batch: %v, %v", errs, err)
	}
}

// testConcurrentUpdateSites: batches over overlapping sites, in different
// orders, beside single updates of the same sites, lose no write (and, on
// a store with row locks, do not deadlock).
func testConcurrentUpdateSites(t *testing.T, h *harness) {
	s := h.fresh(t)
	var names []string
	for i := range 6 {
		name := fmt.Sprintf("s%d.example.com", i)
		mustCreate(t, s, newSite(name))
		names = append(names, name)
	}
	const rounds = 10
	bump := func(x *site.Site) error { x.Status.ObservedGeneration++; return nil }
	var wg sync.WaitGroup
	errc := make(chan error, 4*rounds)
	for w := range 2 {
		order := slices.Clone(names)
		if w == 1 {
			slices.Reverse(order)
		}
		wg.Go(func() {
			for range rounds {
				errs, err := s.UpdateSites(t.Context(), order, bump)
				errc <- errors.Join(append(errs, err)...)
			}
		})
	}
	wg.Go(func() {
		for range rounds {
			for _, n := range names {
				if _, err := s.UpdateSite(t.Context(), n, bump); err != nil {
					errc <- err
				}
			}
		}
	})
	wg.Wait()
	close(errc)
	for err := range errc {
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range names {
		// newSite starts at 1; three writers bump it rounds times each.
		if got := mustGet(t, s, n).Status.ObservedGeneration; got != 1+3*rounds {
			t.Errorf("%s: observed generation %d, want %d (a lost write)", n, got, 1+3*rounds)
		}
	}
}

func testImmutable(t *testing.T, h *harness) {
	s := h.fresh(t)
	for _, tc := range []struct {
		name   string
		mutate func(*site.Site)
	}{
		{"name", func(x *site.Site) { x.Metadata.Name = "other.example.com" }},
		{"uid", func(x *site.Site) { x.Metadata.UID = "other-uid" }},
		{"created_at", func(x *site.Site) { x.Metadata.CreatedAt = x.Metadata.CreatedAt.Add(time.Second) }},
		{"uid with spec", func(x *site.Site) { x.Metadata.UID = "other-uid"; x.Spec.Title = "new" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			created := mustCreate(t, s, newSite(fmt.Sprintf("imm-%d.example.com", rand.Int64())))
			before := mustGet(t, s, created.Metadata.Name)
			rev := revision(t, s)
			_, err := s.UpdateSite(t.Context(), created.Metadata.Name, func(x *site.Site) error { tc.mutate(x); return nil })
			if !errors.Is(err, store.ErrInvalid) {
				t.Errorf("err = %v, want ErrInvalid", err)
			}
			if after := revision(t, s); after != rev {
				t.Errorf("refused update moved revision %d -> %d", rev, after)
			}
			assertSiteEqual(t, mustGet(t, s, created.Metadata.Name), before)
			if _, err := s.GetSite(t.Context(), "other.example.com"); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("renamed site appeared: err = %v", err)
			}
		})
	}
	// A CreatedAt in another location but the same instant is not a change.
	created := mustCreate(t, s, newSite("zone.example.com"))
	_, err := s.UpdateSite(t.Context(), created.Metadata.Name, func(x *site.Site) error {
		x.Metadata.CreatedAt = x.Metadata.CreatedAt.In(time.FixedZone("X", 3600))
		return nil
	})
	if err != nil {
		t.Errorf("same instant in another zone: %v", err)
	}
}

func testRevision(t *testing.T, h *harness) {
	s := h.fresh(t)
	ctx := t.Context()
	last := revision(t, s)
	step := func(what string, rv int64) {
		t.Helper()
		rev := revision(t, s)
		if rev <= last {
			t.Errorf("%s: revision %d not above %d", what, rev, last)
		}
		if rv != 0 && rv != rev {
			t.Errorf("%s: resource version %d, revision %d: want equal", what, rv, rev)
		}
		last = rev
	}
	a := mustCreate(t, s, newSite("a.example.com"))
	step("create a", a.Metadata.ResourceVersion)
	b := mustCreate(t, s, newSite("b.example.com"))
	step("create b", b.Metadata.ResourceVersion)
	if b.Metadata.ResourceVersion <= a.Metadata.ResourceVersion {
		t.Errorf("resource versions not increasing: %d then %d", a.Metadata.ResourceVersion, b.Metadata.ResourceVersion)
	}
	u, err := s.UpdateSite(ctx, "a.example.com", func(x *site.Site) error { x.Spec.Title = "t2"; return nil })
	if err != nil {
		t.Fatal(err)
	}
	step("update a spec", u.Metadata.ResourceVersion)
	u, err = s.UpdateSite(ctx, "a.example.com", func(x *site.Site) error { x.Status.URL = "https://x"; return nil })
	if err != nil {
		t.Fatal(err)
	}
	step("update a status", u.Metadata.ResourceVersion)
	if err := s.DeleteSite(ctx, "b.example.com"); err != nil {
		t.Fatal(err)
	}
	step("delete b", 0)
	if got := mustGet(t, s, "a.example.com").Metadata.ResourceVersion; got != u.Metadata.ResourceVersion {
		t.Errorf("stored resource version %d, last update returned %d", got, u.Metadata.ResourceVersion)
	}
	// Token and audit writes do not take a revision.
	if err := s.CreateToken(ctx, newToken("t1", "secret-1")); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendAudit(ctx, store.AuditEntry{Time: base, Actor: "t1", Action: "x", Target: "y", Outcome: "ok"}); err != nil {
		t.Fatal(err)
	}
	if rev := revision(t, s); rev != last {
		t.Errorf("token/audit writes moved revision %d -> %d", last, rev)
	}
}

// listAll pages through ListSites and returns the names and page sizes.
func listAll(t *testing.T, s store.Store, opts store.ListOptions) (names []string, pages []int) {
	t.Helper()
	for i := 0; ; i++ {
		if i > 10000 {
			t.Fatal("pagination does not end")
		}
		l, err := s.ListSites(t.Context(), opts)
		if err != nil {
			t.Fatalf("list %+v: %v", opts, err)
		}
		pages = append(pages, len(l.Items))
		for _, it := range l.Items {
			names = append(names, it.Metadata.Name)
		}
		if l.Continue == "" {
			return names, pages
		}
		opts.Continue = l.Continue
	}
}

func testPagination(t *testing.T, h *harness) {
	s := h.fresh(t)
	const n = 250
	var want []string
	for i := range n {
		want = append(want, fmt.Sprintf("site-%03d.example.com", i))
	}
	// Create in random order: the list order is by name, not by creation.
	for _, i := range rand.Perm(n) {
		x := minimalSite(want[i])
		x.Status.Shard = "s"
		mustCreate(t, s, x)
	}
	for _, tc := range []struct {
		limit     int
		wantPages []int
	}{
		{100, []int{100, 100, 50}},
		{125, []int{125, 125}}, // an exact multiple: no empty last page
		{0, []int{100, 100, 50}},
		{-1, []int{100, 100, 50}},
		{1, nil}, // 250 pages of 1
		{5000, []int{250}},
	} {
		t.Run(fmt.Sprintf("limit %d", tc.limit), func(t *testing.T) {
			names, pages := listAll(t, s, store.ListOptions{Limit: tc.limit})
			if len(names) != n {
				t.Fatalf("got %d names, want %d", len(names), n)
			}
			for i := range names {
				if names[i] != want[i] {
					t.Fatalf("name %d = %q, want %q (all names once, in order)", i, names[i], want[i])
				}
			}
			if tc.wantPages != nil && fmt.Sprint(pages) != fmt.Sprint(tc.wantPages) {
				t.Errorf("page sizes %v, want %v", pages, tc.wantPages)
			}
			if tc.limit == 1 && len(pages) != n {
				t.Errorf("%d pages, want %d", len(pages), n)
			}
		})
	}
	t.Run("writes between pages", func(t *testing.T) {
		ctx := t.Context()
		first, err := s.ListSites(ctx, store.ListOptions{Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		// A site before the cursor is not seen, one after it is, and nothing
		// is seen twice.
		mustCreate(t, s, minimalSite("site-000a.example.com"))
		mustCreate(t, s, minimalSite("site-200a.example.com"))
		rest, _ := listAll(t, s, store.ListOptions{Limit: 100, Continue: first.Continue})
		if len(rest) != n-100+1 || rest[0] != want[100] {
			t.Errorf("rest after writes: %d names starting %q; want %d starting %q", len(rest), rest[0], n-100+1, want[100])
		}
	})
}

func testContinueInvalid(t *testing.T, h *harness) {
	s := h.fresh(t)
	for _, tok := range []string{"!!not a token!!", "%%%", "\x00"} {
		if _, err := s.ListSites(t.Context(), store.ListOptions{Continue: tok}); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("continue %q: err = %v, want ErrInvalid", tok, err)
		}
	}
}

func testShardFilter(t *testing.T, h *harness) {
	s := h.fresh(t)
	want := map[string][]string{}
	for i := range 30 {
		shard := []string{"shard-a", "shard-b", ""}[i%3]
		x := minimalSite(fmt.Sprintf("s%02d.example.com", i))
		x.Status.Shard = shard
		mustCreate(t, s, x)
		want[shard] = append(want[shard], x.Metadata.Name)
	}
	// A site moving shards is listed under its new shard.
	if _, err := s.UpdateSite(t.Context(), "s00.example.com", func(x *site.Site) error { x.Status.Shard = "shard-c"; return nil }); err != nil {
		t.Fatal(err)
	}
	want["shard-a"] = want["shard-a"][1:]
	want["shard-c"] = []string{"s00.example.com"}
	for _, tc := range []struct {
		shard string
		limit int
	}{
		{"shard-a", 0}, {"shard-a", 3}, {"shard-b", 4}, {"shard-c", 0}, {"shard-none", 0},
	} {
		t.Run(fmt.Sprintf("%s limit %d", tc.shard, tc.limit), func(t *testing.T) {
			names, _ := listAll(t, s, store.ListOptions{Shard: tc.shard, Limit: tc.limit})
			if fmt.Sprint(names) != fmt.Sprint(want[tc.shard]) {
				t.Errorf("names %v, want %v", names, want[tc.shard])
			}
		})
	}
	all, _ := listAll(t, s, store.ListOptions{})
	if len(all) != 30 {
		t.Errorf("unfiltered list has %d sites, want 30", len(all))
	}
}

func testConcurrentUpdates(t *testing.T, h *harness) {
	s := h.fresh(t)
	const name = "busy.example.com"
	start := mustCreate(t, s, newSite(name))
	const workers, perWorker = 20, 5
	var wg sync.WaitGroup
	var mu sync.Mutex
	seen := map[int64]bool{}
	for range workers {
		wg.Go(func() {
			for range perWorker {
				got, err := s.UpdateSite(t.Context(), name, func(x *site.Site) error {
					x.Spec.PHP.MaxChildren++      // spec: generation bumps
					x.Status.ObservedGeneration++ // status rides along
					return nil
				})
				if err != nil {
					t.Errorf("update: %v", err)
					return
				}
				mu.Lock()
				if seen[got.Metadata.ResourceVersion] {
					t.Errorf("resource version %d returned twice", got.Metadata.ResourceVersion)
				}
				seen[got.Metadata.ResourceVersion] = true
				mu.Unlock()
			}
		})
	}
	// Readers run alongside the writers.
	done := make(chan struct{})
	var readers sync.WaitGroup
	for range 4 {
		readers.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				if _, err := s.GetSite(t.Context(), name); err != nil {
					t.Errorf("concurrent get: %v", err)
					return
				}
				if _, err := s.ListSites(t.Context(), store.ListOptions{}); err != nil {
					t.Errorf("concurrent list: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(done)
	readers.Wait()

	got := mustGet(t, s, name)
	const total = workers * perWorker
	if got.Spec.PHP.MaxChildren != start.Spec.PHP.MaxChildren+total {
		t.Errorf("max_children = %d, want %d: lost writes", got.Spec.PHP.MaxChildren, start.Spec.PHP.MaxChildren+total)
	}
	if got.Status.ObservedGeneration != start.Status.ObservedGeneration+total {
		t.Errorf("observed_generation = %d, want %d: lost writes", got.Status.ObservedGeneration, start.Status.ObservedGeneration+total)
	}
	if got.Metadata.Generation != 1+total {
		t.Errorf("generation = %d, want %d", got.Metadata.Generation, 1+total)
	}
	if rev := revision(t, s); got.Metadata.ResourceVersion != rev {
		t.Errorf("resource version %d, revision %d: want equal", got.Metadata.ResourceVersion, rev)
	}
}

func testConcurrentCreateSameName(t *testing.T, h *harness) {
	s := h.fresh(t)
	const n = 10
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			x := newSite("race.example.com")
			x.Metadata.UID = fmt.Sprintf("uid-%d", i)
			errs[i] = s.CreateSite(t.Context(), x)
		})
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, store.ErrAlreadyExists):
			t.Errorf("create: %v", err)
		}
	}
	if ok != 1 {
		t.Errorf("%d concurrent creates of one name succeeded, want 1", ok)
	}
}

// newToken returns a token whose Hash is the SHA-256 hex of secret.
func newToken(id, secret string) store.Token {
	sum := sha256.Sum256([]byte(secret))
	return store.Token{ID: id, Name: "name of " + id, Role: store.RoleViewer, Hash: hex.EncodeToString(sum[:]), CreatedAt: base}
}

func testTokens(t *testing.T, h *harness) {
	s := h.fresh(t)
	ctx := t.Context()
	admin := newToken("tok-admin", "s3cret-admin")
	admin.Role = store.RoleAdmin
	viewer := newToken("tok-viewer", "s3cret-viewer")
	viewer.CreatedAt = base.Add(time.Hour).In(time.FixedZone("X", -7*3600))
	for _, tok := range []store.Token{admin, viewer} {
		if err := s.CreateToken(ctx, tok); err != nil {
			t.Fatalf("create token %q: %v", tok.ID, err)
		}
	}
	t.Run("lookup", func(t *testing.T) {
		for _, want := range []store.Token{admin, viewer} {
			got, err := s.LookupToken(ctx, want.Hash)
			if err != nil {
				t.Fatalf("lookup %q: %v", want.ID, err)
			}
			if got.ID != want.ID || got.Name != want.Name || got.Role != want.Role || got.Hash != want.Hash || !got.CreatedAt.Equal(want.CreatedAt) {
				t.Errorf("lookup = %+v, want %+v", *got, want)
			}
		}
	})
	t.Run("unknown", func(t *testing.T) {
		unknown := newToken("x", "never created").Hash
		for _, hash := range []string{unknown, "", "s3cret-admin"} {
			if _, err := s.LookupToken(ctx, hash); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("lookup %q: err = %v, want ErrNotFound", hash, err)
			}
		}
	})
	t.Run("duplicate", func(t *testing.T) {
		sameID := newToken("tok-admin", "another secret")
		sameHash := newToken("tok-other", "s3cret-admin")
		for _, tok := range []store.Token{sameID, sameHash} {
			if err := s.CreateToken(ctx, tok); !errors.Is(err, store.ErrAlreadyExists) {
				t.Errorf("create %q: err = %v, want ErrAlreadyExists", tok.ID, err)
			}
		}
		if _, err := s.LookupToken(ctx, sameID.Hash); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("refused token stored: err = %v", err)
		}
	})
	t.Run("invalid", func(t *testing.T) {
		secret := newToken("tok-secret", "x")
		secret.Hash = "plain-secret-value"
		upper := newToken("tok-upper", "y")
		upper.Hash = "ABCDEF" + upper.Hash[6:]
		noID := newToken("", "z")
		for _, tok := range []store.Token{secret, upper, noID} {
			if err := s.CreateToken(ctx, tok); !errors.Is(err, store.ErrInvalid) {
				t.Errorf("create %+v: err = %v, want ErrInvalid", tok, err)
			}
		}
	})
}

func testReopen(t *testing.T, h *harness) {
	dir := t.TempDir()
	ctx := t.Context()

	s := h.open(t, dir)
	a := mustCreate(t, s, newSite("a.example.com"))
	mustCreate(t, s, newSite("b.example.com"))
	if _, err := s.UpdateSite(ctx, "a.example.com", func(x *site.Site) error { x.Spec.Title = "t2"; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteSite(ctx, "b.example.com"); err != nil {
		t.Fatal(err)
	}
	tok := newToken("tok", "secret")
	if err := s.CreateToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	entry := store.AuditEntry{Time: base, Actor: "tok", Action: "site.create", Target: "a.example.com", Outcome: "ok"}
	if err := s.AppendAudit(ctx, entry); err != nil {
		t.Fatal(err)
	}
	wantSite := mustGet(t, s, a.Metadata.Name)
	wantRev := revision(t, s)
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}

	s = h.openAt(t, dir)
	assertSiteEqual(t, mustGet(t, s, a.Metadata.Name), wantSite)
	if _, err := s.GetSite(ctx, "b.example.com"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("deleted site back after reopen: err = %v", err)
	}
	if rev := revision(t, s); rev != wantRev {
		t.Errorf("revision after reopen = %d, want %d", rev, wantRev)
	}
	if got, err := s.LookupToken(ctx, tok.Hash); err != nil || got.ID != tok.ID {
		t.Errorf("token after reopen = %v, %v", got, err)
	}
	if got, err := s.ListAudit(ctx, store.AuditListOptions{}); err != nil || len(got) != 1 || got[0].Target != entry.Target || got[0].Seq != 1 {
		t.Errorf("audit after reopen = %v, %v", got, err)
	}
	c := mustCreate(t, s, newSite("c.example.com"))
	if c.Metadata.ResourceVersion <= wantRev {
		t.Errorf("first write after reopen got resource version %d, not above %d", c.Metadata.ResourceVersion, wantRev)
	}
}

func testCanceledContext(t *testing.T, h *harness) {
	s := h.fresh(t)
	mustCreate(t, s, newSite("a.example.com"))
	rev := revision(t, s)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"create", func() error { return s.CreateSite(ctx, newSite("b.example.com")) }},
		{"update", func() error {
			_, err := s.UpdateSite(ctx, "a.example.com", func(x *site.Site) error { x.Spec.Title = "x"; return nil })
			return err
		}},
		{"delete", func() error { return s.DeleteSite(ctx, "a.example.com") }},
		{"get", func() error { _, err := s.GetSite(ctx, "a.example.com"); return err }},
		{"list", func() error { _, err := s.ListSites(ctx, store.ListOptions{}); return err }},
	} {
		if err := tc.call(); err == nil {
			t.Errorf("%s with a canceled context succeeded", tc.name)
		}
	}
	if after := revision(t, s); after != rev {
		t.Errorf("canceled writes moved revision %d -> %d", rev, after)
	}
	// The store is still usable.
	if _, err := s.UpdateSite(t.Context(), "a.example.com", func(x *site.Site) error { x.Spec.Title = "y"; return nil }); err != nil {
		t.Errorf("update after canceled calls: %v", err)
	}
	if _, err := s.GetSite(t.Context(), "b.example.com"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("canceled create stored the site: err = %v", err)
	}
}

// testReadInsideMutate checks that mutate may read the store (the contract
// only forbids writes from inside mutate).
func testReadInsideMutate(t *testing.T, h *harness) {
	s := h.fresh(t)
	mustCreate(t, s, newSite("a.example.com"))
	mustCreate(t, s, newSite("b.example.com"))
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	got, err := s.UpdateSite(ctx, "a.example.com", func(x *site.Site) error {
		other, err := s.GetSite(ctx, "b.example.com")
		if err != nil {
			return err
		}
		x.Spec.Title = other.Spec.Title
		return nil
	})
	if err != nil {
		t.Fatalf("update reading inside mutate: %v", err)
	}
	if got.Spec.Title != "Title of b.example.com" {
		t.Errorf("title = %q", got.Spec.Title)
	}
}
