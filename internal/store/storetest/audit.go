package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
)

// auditEntry returns the i-th test entry, every field set (Seq, PrevHash
// and Hash set to garbage the store must ignore).
func auditEntry(i int, org string) store.AuditEntry {
	return store.AuditEntry{
		Seq: 99, PrevHash: "bogus", Hash: "bogus",
		Time:  base.Add(time.Duration(i) * time.Second),
		Actor: fmt.Sprintf("tok-%d", i), ActorUser: "usr-1", Org: org, Channel: store.ChannelCLI,
		Action: "site.update", Target: fmt.Sprintf("s%d.example.com", i), Outcome: "success",
		Detail: "waf.exclusions +942190:/:s", RequestID: fmt.Sprintf("req-%d", i), SourceIP: "127.0.0.1",
	}
}

func mustAppendAudit(t *testing.T, s store.Store, e store.AuditEntry) {
	t.Helper()
	if err := s.AppendAudit(t.Context(), e); err != nil {
		t.Fatal(err)
	}
}

func mustListAudit(t *testing.T, s store.Store, opts store.AuditListOptions) []store.AuditEntry {
	t.Helper()
	got, err := s.ListAudit(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// checkChain fails t unless entries are seq 1..n, each linked to the one
// before and hashed by store.AuditHash.
func checkChain(t *testing.T, entries []store.AuditEntry) {
	t.Helper()
	prev := ""
	for i, e := range entries {
		if e.Seq != int64(i+1) {
			t.Fatalf("entry %d has seq %d, want %d", i, e.Seq, i+1)
		}
		if e.PrevHash != prev {
			t.Errorf("entry %d: prev hash %q, want %q", e.Seq, e.PrevHash, prev)
		}
		if h := store.AuditHash(e); e.Hash != h {
			t.Errorf("entry %d: hash %q, recomputed %q", e.Seq, e.Hash, h)
		}
		prev = e.Hash
	}
}

// testAudit checks that appends make a chain of every field as given, in
// seq order, across reopen.
func testAudit(t *testing.T, h *harness) {
	dir := t.TempDir()
	ctx := t.Context()
	s := h.open(t, dir)
	if got := mustListAudit(t, s, store.AuditListOptions{}); len(got) != 0 {
		t.Fatalf("empty audit = %v; want none", got)
	}
	if head, err := s.AuditHead(ctx); err != nil || head != (store.AuditHead{}) {
		t.Fatalf("empty head = %+v, %v", head, err)
	}
	var appended []store.AuditEntry
	for i := range 5 {
		e := auditEntry(i, "acme")
		if i == 3 {
			// Order is append order, even with an older timestamp.
			e.Time = base.Add(-time.Hour)
			e.Org, e.Channel, e.ActorUser, e.Detail = "", "", "", ""
		}
		mustAppendAudit(t, s, e)
		appended = append(appended, e)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = h.openAt(t, dir)
	e := auditEntry(5, "acme")
	e.Time = base.Add(5*time.Second + 999) // sub-microsecond: stored truncated
	mustAppendAudit(t, s, e)
	e.Time = base.Add(5 * time.Second)
	appended = append(appended, e)

	got := mustListAudit(t, s, store.AuditListOptions{})
	if len(got) != len(appended) {
		t.Fatalf("%d entries, want %d", len(got), len(appended))
	}
	checkChain(t, got)
	for i, g := range got {
		w := appended[i]
		w.Seq, w.PrevHash, w.Hash = g.Seq, g.PrevHash, g.Hash
		if !g.Time.Equal(w.Time) {
			t.Errorf("entry %d: time %v, want %v", g.Seq, g.Time, w.Time)
		}
		w.Time = g.Time
		if g != w {
			t.Errorf("entry %d = %+v, want %+v", g.Seq, g, w)
		}
	}
	head, err := s.AuditHead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if last := got[len(got)-1]; head != (store.AuditHead{Seq: last.Seq, Hash: last.Hash}) {
		t.Errorf("head = %+v, want seq %d hash %s", head, last.Seq, last.Hash)
	}
}

func testAuditFilters(t *testing.T, h *harness) {
	s := h.fresh(t)
	orgs := []string{"acme", "beta", "", "acme", "beta", "acme", "acme"}
	for i, o := range orgs {
		mustAppendAudit(t, s, auditEntry(i, o))
	}
	seqs := func(es []store.AuditEntry) []int64 {
		out := []int64{}
		for _, e := range es {
			out = append(out, e.Seq)
		}
		return out
	}
	for _, tc := range []struct {
		name string
		opts store.AuditListOptions
		want []int64
	}{
		{"all", store.AuditListOptions{}, []int64{1, 2, 3, 4, 5, 6, 7}},
		{"limit", store.AuditListOptions{Limit: 2}, []int64{1, 2}},
		{"after", store.AuditListOptions{AfterSeq: 5}, []int64{6, 7}},
		{"after the end", store.AuditListOptions{AfterSeq: 7}, []int64{}},
		{"org", store.AuditListOptions{Org: "acme"}, []int64{1, 4, 6, 7}},
		{"org page", store.AuditListOptions{Org: "acme", AfterSeq: 1, Limit: 2}, []int64{4, 6}},
		{"orgs", store.AuditListOptions{Orgs: []string{"beta", ""}}, []int64{2, 3, 5}},
		{"orgs empty", store.AuditListOptions{Orgs: []string{}}, []int64{}},
		{"org and orgs", store.AuditListOptions{Org: "acme", Orgs: []string{"beta"}}, []int64{}},
		{"since", store.AuditListOptions{Since: base.Add(5 * time.Second)}, []int64{6, 7}},
		{"since inside a microsecond", store.AuditListOptions{Since: base.Add(5*time.Second + 1)}, []int64{7}},
		{"since and org", store.AuditListOptions{Since: base.Add(2 * time.Second), Org: "beta"}, []int64{5}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := seqs(mustListAudit(t, s, tc.opts)); fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("seqs %v, want %v", got, tc.want)
			}
		})
	}
}

// testAuditConcurrent appends from many goroutines: the chain must not
// fork (seqs 1..n, each linked to the one before).
func testAuditConcurrent(t *testing.T, h *harness) {
	s := h.fresh(t)
	const workers, each = 8, 10
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				if err := s.AppendAudit(t.Context(), auditEntry(w*each+i, "acme")); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got := mustListAudit(t, s, store.AuditListOptions{Limit: store.MaxLimit})
	if len(got) != workers*each {
		t.Fatalf("%d entries, want %d", len(got), workers*each)
	}
	checkChain(t, got)
}

func testAuditCheckpoints(t *testing.T, h *harness) {
	s := h.fresh(t)
	ctx := t.Context()
	for i := range 4 {
		mustAppendAudit(t, s, auditEntry(i, ""))
	}
	entries := mustListAudit(t, s, store.AuditListOptions{})
	cp := func(seq int64) store.AuditCheckpoint {
		return store.AuditCheckpoint{Seq: seq, Hash: entries[seq-1].Hash, Time: base.Add(time.Duration(seq)*time.Minute + 7), KeyID: "k1", Signature: []byte{1, 2, 3, byte(seq)}}
	}
	for _, seq := range []int64{2, 4} {
		if err := s.AddAuditCheckpoint(ctx, cp(seq)); err != nil {
			t.Fatalf("add checkpoint %d: %v", seq, err)
		}
	}
	for _, tc := range []struct {
		name string
		cp   store.AuditCheckpoint
		want error
	}{
		{"same seq again", cp(2), store.ErrAlreadyExists},
		{"wrong hash", store.AuditCheckpoint{Seq: 3, Hash: entries[1].Hash, Time: base, KeyID: "k1", Signature: []byte{1}}, store.ErrInvalid},
		{"no such entry", store.AuditCheckpoint{Seq: 5, Hash: entries[3].Hash, Time: base, KeyID: "k1", Signature: []byte{1}}, store.ErrInvalid},
	} {
		if err := s.AddAuditCheckpoint(ctx, tc.cp); !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
	}
	got, err := s.ListAuditCheckpoints(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("checkpoints %+v, want 2", got)
	}
	for i, seq := range []int64{2, 4} {
		w := cp(seq)
		if g := got[i]; g.Seq != w.Seq || g.Hash != w.Hash || !g.Time.Equal(store.NormalizeAuditTime(w.Time)) || g.KeyID != w.KeyID || string(g.Signature) != string(w.Signature) {
			t.Errorf("checkpoint %d = %+v, want %+v", i, g, w)
		}
	}
	if got, err := s.ListAuditCheckpoints(ctx, 2, 10); err != nil || len(got) != 1 || got[0].Seq != 4 {
		t.Errorf("checkpoints after 2 = %+v, %v; want seq 4", got, err)
	}
	if got, err := s.ListAuditCheckpoints(ctx, 0, 1); err != nil || len(got) != 1 || got[0].Seq != 2 {
		t.Errorf("first checkpoint page = %+v, %v; want seq 2", got, err)
	}
	mustAppendAudit(t, s, auditEntry(5, ""))
	head, err := s.AuditHead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if head.Seq != 5 || head.CheckpointSeq != 4 {
		t.Errorf("head = %+v, want seq 5, checkpoint 4", head)
	}
}

// testCreateSiteAudited checks that CreateSiteAudited writes the site and
// its audit entry together, and neither when the create fails, also among
// concurrent appends and creates (which SQLite commits in groups).
func testCreateSiteAudited(t *testing.T, h *harness) {
	s := h.fresh(t)
	ctx := t.Context()
	mustAppendAudit(t, s, auditEntry(0, ""))
	mustCreate(t, s, newSite("taken.example.com"))
	for _, tc := range []struct {
		name    string
		site    *site.Site
		wantErr error // nil: created and audited
	}{
		{"new", newSite("a.example.com"), nil},
		{"another", newSite("b.example.com"), nil},
		{"duplicate", newSite("taken.example.com"), store.ErrAlreadyExists},
		{"unknown organisation", func() *site.Site { x := newSite("c.example.com"); x.Metadata.Org = "nobody"; return x }(), store.ErrInvalid},
		{"invalid", func() *site.Site { x := newSite("d.example.com"); x.Metadata.UID = ""; return x }(), store.ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := mustListAudit(t, s, store.AuditListOptions{})
			rev := revision(t, s)
			e := auditEntry(len(before), "")
			e.Action, e.Target = "site.create", tc.site.Metadata.Name
			err := s.CreateSiteAudited(ctx, tc.site, e)
			after := mustListAudit(t, s, store.AuditListOptions{})
			checkChain(t, after)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				if len(after) != len(before) {
					t.Errorf("failed create appended %d audit entries", len(after)-len(before))
				}
				if r := revision(t, s); r != rev {
					t.Errorf("failed create moved the revision %d -> %d", rev, r)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := mustGet(t, s, tc.site.Metadata.Name)
			if got.Metadata.Generation != 1 || got.Metadata.ResourceVersion != tc.site.Metadata.ResourceVersion || got.Metadata.ResourceVersion <= rev {
				t.Errorf("stored generation %d, resource version %d (caller's %d, revision before %d)",
					got.Metadata.Generation, got.Metadata.ResourceVersion, tc.site.Metadata.ResourceVersion, rev)
			}
			if len(after) != len(before)+1 {
				t.Fatalf("%d audit entries after, want %d", len(after), len(before)+1)
			}
			g := after[len(after)-1]
			e.Seq, e.PrevHash, e.Hash = g.Seq, g.PrevHash, g.Hash
			if !g.Time.Equal(e.Time) {
				t.Errorf("time %v, want %v", g.Time, e.Time)
			}
			e.Time = g.Time
			if g != e {
				t.Errorf("entry = %+v, want %+v", g, e)
			}
		})
	}

	// Concurrent audited creates (a duplicate among them) and appends: one
	// chain without gaps, an entry for each create that succeeded.
	const n = 20
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			name := fmt.Sprintf("c%d.example.com", i)
			if i == 7 {
				name = "taken.example.com"
			}
			e := auditEntry(i, "")
			e.Action, e.Target = "site.create", name
			errs[i] = s.CreateSiteAudited(ctx, newSite(name), e)
		})
		wg.Go(func() { mustAppendAudit(t, s, auditEntry(i, "")) })
	}
	wg.Wait()
	created := 0
	for i, err := range errs {
		switch {
		case i == 7 && !errors.Is(err, store.ErrAlreadyExists):
			t.Errorf("duplicate create: err = %v, want ErrAlreadyExists", err)
		case i != 7 && err != nil:
			t.Errorf("create %d: %v", i, err)
		case err == nil:
			created++
		}
	}
	all := mustListAudit(t, s, store.AuditListOptions{Limit: store.MaxLimit})
	checkChain(t, all)
	creates := 0
	for _, e := range all {
		if e.Action == "site.create" {
			creates++
			if _, err := s.GetSite(ctx, e.Target); err != nil {
				t.Errorf("audited create of %s: %v", e.Target, err)
			}
		}
	}
	if want := 2 + created; creates != want {
		t.Errorf("%d site.create entries, want %d", creates, want)
	}
}
