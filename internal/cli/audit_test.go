package cli

import (
	"bufio"
	"bytes"
	"database/sql"
	"encoding/json"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/api"
	"github.com/aipress/aipress/internal/auditlog"
	"github.com/aipress/aipress/internal/store"
	"github.com/aipress/aipress/internal/store/sqlite"
)

func TestParseSince(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    time.Time
		wantErr string
	}{
		{"", time.Time{}, ""},
		{"24h", cliNow.Add(-24 * time.Hour), ""},
		{"90m", created, ""},
		{"2025-03-14T15:00:00Z", time.Date(2025, 3, 14, 15, 0, 0, 0, time.UTC), ""},
		{"2025-03-14T17:00:00+02:00", time.Date(2025, 3, 14, 15, 0, 0, 0, time.UTC), ""},
		{"-1h", time.Time{}, "positive duration"},
		{"yesterday", time.Time{}, "want a duration such as 24h or an RFC 3339 time"},
	} {
		got, err := parseSince(tc.in, cliNow)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%q: err %v, want %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("%q = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

// newAuditHarness is the CLI harness with a checkpoint key, over a SQLite
// file the test may edit directly.
func newAuditHarness(t *testing.T) (*harness, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "aipress.db")
	st, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	for _, tok := range []store.Token{
		{ID: "tok-admin", Name: "admin", Role: store.RoleAdmin, Hash: hash(adminSecret), CreatedAt: created},
		{ID: "tok-viewer", Name: "viewer", Role: store.RoleViewer, Hash: hash(viewerSecret), CreatedAt: created},
	} {
		if err := st.CreateToken(t.Context(), tok); err != nil {
			t.Fatal(err)
		}
	}
	sg, err := auditlog.NewSigner(bytes.Repeat([]byte{5}, 32))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.New(api.Config{Store: st, Placer: api.StaticPlacer("local"), Clock: func() time.Time { return created },
		AuditSigner: sg}))
	t.Cleanup(srv.Close)
	return &harness{store: st, url: srv.URL, env: map[string]string{EnvURL: srv.URL, EnvToken: adminSecret}}, path
}

func TestAuditCommands(t *testing.T) {
	h, path := newAuditHarness(t)
	for _, d := range []string{"a.localhost", "b.localhost"} {
		if _, _, err := h.run(t, "site", "create", d, "--title", "Blog", "--admin-email", "me@example.com", "--wait=false"); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := h.run(t, "site", "suspend", "a.localhost", "--wait=false"); err != nil {
		t.Fatal(err)
	}
	if err := h.store.AppendAudit(t.Context(), store.AuditEntry{Time: created, Actor: "tok-owner", ActorUser: "usr-7", Org: "acme",
		Channel: store.ChannelPortal, Action: "site.update", Target: "c.localhost", Outcome: "success", Detail: "title"}); err != nil {
		t.Fatal(err)
	}

	out, _, err := h.run(t, "audit", "list")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "audit_list_table", out)
	out, _, err = h.run(t, "audit", "list", "--org", "acme", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var page api.AuditList
	if err := json.Unmarshal([]byte(out), &page); err != nil || len(page.Items) != 1 || page.Items[0].Seq != 4 || page.Items[0].Org != "acme" {
		t.Errorf("list --org acme -o json: %v, %s", err, out)
	}
	// Pages: the table says how to get the next one.
	out, stderr, err := h.run(t, "audit", "list", "--limit", "2")
	if err != nil || strings.Count(out, "\n") != 3 || !strings.Contains(stderr, "aipress audit list --after 2") {
		t.Errorf("list --limit 2: %v\n%s%s", err, out, stderr)
	}
	if out, _, err = h.run(t, "audit", "list", "--after", "3", "-o", "json"); err != nil || !strings.Contains(out, `"seq": 4`) || strings.Contains(out, `"seq": 3`) {
		t.Errorf("list --after 3: %v\n%s", err, out)
	}
	// The CLI's calls are recorded as channel cli.
	entries, err := h.store.ListAudit(t.Context(), store.AuditListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if entries[0].Channel != store.ChannelCLI || entries[0].RequestID == "" || entries[0].SourceIP != "127.0.0.1" {
		t.Errorf("first entry %+v: want channel cli, a request ID, source 127.0.0.1", entries[0])
	}

	out, _, err = h.run(t, "audit", "export", "--since", "2025-01-02T03:04:05Z")
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(strings.NewReader(out))
	var seqs []int64
	for sc.Scan() {
		var e store.AuditEntry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil || e.Hash != store.AuditHash(e) {
			t.Fatalf("export line %q: %v", sc.Text(), err)
		}
		seqs = append(seqs, e.Seq)
	}
	if len(seqs) != 4 || seqs[0] != 1 || seqs[3] != 4 {
		t.Errorf("export seqs %v, want 1..4", seqs)
	}
	if out, _, _ := h.run(t, "audit", "export", "--since", "1h"); out != "" {
		t.Errorf("export --since 1h (all entries are older): %q", out)
	}

	out, _, err = h.run(t, "audit", "checkpoint")
	if err != nil || !strings.Contains(out, "Signed a checkpoint at entry 4") {
		t.Errorf("checkpoint: %v, %s", err, out)
	}
	out, _, err = h.run(t, "audit", "verify")
	if err != nil || !strings.Contains(out, "Audit log intact: 5 entries, 1 signed checkpoints (the last at entry 4; 1 entries after it).") {
		t.Errorf("verify: %v, %s", err, out)
	}

	// Tamper with the database: verify fails, naming the entry.
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`DELETE FROM audit WHERE seq = 2`); err != nil {
		t.Fatal(err)
	}
	_, _, err = h.run(t, "audit", "verify")
	if err == nil || err.Error() != "audit log TAMPERED: entry 2 is missing (the entry after 1 is 3): entries were deleted (first entry that cannot be trusted: 2)" {
		t.Errorf("verify after deleting entry 2: %v", err)
	}
	out, _, err = h.run(t, "audit", "verify", "-o", "json")
	if err == nil || !strings.Contains(out, `"first_bad_seq": 2`) {
		t.Errorf("verify -o json after tampering: %v, %s", err, out)
	}

	// Bad input: clear errors, nothing sent.
	for _, args := range [][]string{{"audit", "list", "--since", "yesterday"}, {"audit", "list", "--limit", "5000"}, {"audit", "export", "--since", "-2h"}} {
		if _, _, err := h.run(t, args...); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
	// A viewer may list but not verify.
	h.env[EnvToken] = viewerSecret
	if _, _, err := h.run(t, "audit", "list"); err != nil {
		t.Errorf("viewer list: %v", err)
	}
	if _, _, err := h.run(t, "audit", "verify"); err == nil || !strings.Contains(err.Error(), "may not perform audit.verify") {
		t.Errorf("viewer verify: %v", err)
	}
}
