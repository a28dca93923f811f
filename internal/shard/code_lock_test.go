package shard

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
)

// lockTestShard is a shard with only what taking its sites' locks and
// naming their resources needs.
func lockTestShard(t *testing.T) *Shard {
	t.Helper()
	return &Shard{cfg: Config{Name: "s1", Clock: time.Now, JobPoll: time.Millisecond}, layout: Layout{Name: "s1", Dir: t.TempDir()},
		busy: map[string]chan struct{}{}, converged: map[string]convergedAt{}, lastCron: map[string]time.Time{}}
}

// readySite is a site this shard serves, installed.
func readySite(t *testing.T, s *Shard) *site.Site {
	t.Helper()
	st := &site.Site{}
	st.Metadata.Name, st.Metadata.UID = "blog", "0123456789abcdef0123456789abcdef"
	st.Status.Shard, st.Status.Phase = s.cfg.Name, site.PhaseReady
	n := s.NamesFor(st.Metadata.UID)
	if err := os.MkdirAll(n.Dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(n.Dir, "installed"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	return st
}

// A code job re-checks the site once it holds it: a deletion, move or
// suspension that began while another job held the site stops it before it
// changes anything.
func TestRunCodeRechecksAfterLock(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		name   string
		change func(*site.Site)
		want   string
	}{
		{"deleted", func(st *site.Site) { st.Metadata.DeletionRequested = &now }, "being deleted"},
		{"moving", func(st *site.Site) { st.Move = &site.Move{ID: "m1", Phase: site.MoveExporting} }, "moving between shards"},
		{"suspended", func(st *site.Site) { st.Spec.Suspended = true }, "suspended"},
		{"not ready", func(st *site.Site) { st.Status.Phase = site.PhaseCreating }, "no longer ready"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := lockTestShard(t)
			calls := 0
			// The first read (waiting for the site) sees it ready; the one
			// after the lock sees what happened meanwhile.
			get := func(context.Context) (*site.Site, error) {
				calls++
				st := readySite(t, s)
				if calls > 1 {
					tc.change(st)
				}
				return st, nil
			}
			_, err := s.RunCode(context.Background(), nil, get, "j1", store.CodeParams{}, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("RunCode: %v, want an error saying %q", err, tc.want)
			}
			if calls != 2 {
				t.Errorf("site read %d times, want 2 (before and after the lock)", calls)
			}
		})
	}
}

// Teardown and a move's export wait while a job (a code job) holds the
// site: a code job's rollback would recreate the database teardown
// dropped, and an export would copy a half-applied change.
func TestTeardownAndExportWaitForJobs(t *testing.T) {
	s := lockTestShard(t)
	st := readySite(t, s)
	st.Move = &site.Move{ID: "m1", Phase: site.MoveExporting, Source: s.cfg.Name, Target: "s2"}
	n := s.NamesFor(st.Metadata.UID)
	unlock, err := s.lockSite(context.Background(), n.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	if err := s.teardown(context.Background(), n); !errors.Is(err, errSiteBusy) {
		t.Errorf("teardown of a held site: %v, want errSiteBusy", err)
	}
	if _, err := os.Stat(filepath.Join(n.Dir, "installed")); err != nil {
		t.Errorf("teardown of a held site removed its files: %v", err)
	}
	if err := s.moveExport(context.Background(), nil, st); !errors.Is(err, errSiteBusy) {
		t.Errorf("export of a held site: %v, want errSiteBusy", err)
	}
	// The move's step is put off without an error reported (src is nil:
	// reporting one would panic).
	if handled, err := s.reconcileMove(context.Background(), nil, st); !handled || err != nil {
		t.Errorf("reconcileMove of a held site: %v, %v; want handled, no error", handled, err)
	}
}

// Leftovers of every kind of a forgotten site — its database, its backup
// slot's user, restore and code job staging databases — are the shard's
// orphans to collect.
func TestOrphanNames(t *testing.T) {
	s := New(Config{Name: "s1", Dir: t.TempDir()})
	id := "0123456789ab"
	for _, suffix := range []string{"", "_b", "_rs", "_ro", "_cs", "_co"} {
		m := s.orphanName.FindStringSubmatch(s.prefix + id + suffix)
		if m == nil || m[1] != id {
			t.Errorf("%q: not an orphan name (match %v)", s.prefix+id+suffix, m)
		}
	}
	for _, name := range []string{s.prefix + id + "_x", "other_" + id, s.prefix + id + "_csx"} {
		if s.orphanName.MatchString(name) {
			t.Errorf("%q matched as an orphan name", name)
		}
	}
}
