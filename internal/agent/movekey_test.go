package agent

import (
	"bytes"
	"context"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aipress/aipress/internal/api"
	"github.com/aipress/aipress/internal/apiclient"
	"github.com/aipress/aipress/internal/backup/repos"
	"github.com/aipress/aipress/internal/site"
)

// TestMoveKeys gets a move's key the way a shard agent does, through the
// real API: the source and the target get the control plane's key of that
// move; another shard, or a shard that works on another move (or another
// site of the same name), gets an error.
func TestMoveKeys(t *testing.T) {
	c := newCP(t)
	dir := t.TempDir()
	kek, err := repos.LoadKEK(filepath.Join(dir, repos.KEKFile))
	if err != nil {
		t.Fatal(err)
	}
	m, err := repos.New(repos.Config{BaseURL: repos.DefaultBaseURL(dir), KEK: kek})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.New(api.Config{Store: c.store, Backups: m}))
	t.Cleanup(srv.Close)
	st := c.place("a.com", "s1")
	c.update("a.com", func(s *site.Site) {
		s.Move = &site.Move{ID: "move-1", Source: "s1", Target: "s2", Phase: site.MoveImporting, RequestedAt: created}
	})
	want := m.MoveKey(st.Metadata.UID, "move-1")
	ctx := context.Background()
	for _, tc := range []struct {
		name, secret, uid, moveID, wantErr string
	}{
		{"source", s1Secret, st.Metadata.UID, "move-1", ""},
		{"target", s2Secret, st.Metadata.UID, "move-1", ""},
		{"another shard", s9Secret, st.Metadata.UID, "move-1", "neither the source nor the target"},
		{"another move", s2Secret, st.Metadata.UID, "move-0", "current move is move-1"},
		{"another site of the name", s2Secret, "uid-old", "move-1", "current move is move-1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key, err := MoveKeys(apiclient.New(srv.URL, tc.secret))(ctx, "a.com", tc.uid, tc.moveID)
			switch {
			case tc.wantErr == "" && (err != nil || !bytes.Equal(key, want)):
				t.Errorf("key = %x, %v; want %x", key, err, want)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr) || key != nil):
				t.Errorf("key = %x, %v; want an error with %q", key, err, tc.wantErr)
			}
		})
	}
}
