package mariadb

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/fsperm"
)

// A local server writes a ROW binary log with full images and column
// metadata under Dir/binlog, with GTIDs of its server_id in domain 0.
func TestBinlogOn(t *testing.T) {
	s := startServer(t)
	ctx := context.Background()
	for v, want := range map[string]string{
		"@@log_bin": "1", "@@binlog_format": "ROW", "@@binlog_row_image": "FULL",
		"@@binlog_row_metadata": "FULL", "@@server_id": "1", "@@gtid_domain_id": "0",
		"@@gtid_strict_mode": "1", "@@binlog_expire_logs_seconds": "259200",
		"@@log_bin_basename": filepath.Join(s.BinlogDir(), "mariadb-bin"),
	} {
		if got, err := s.QueryString(ctx, "SELECT "+v); err != nil || got != want {
			t.Errorf("%s = %q, %v; want %q", v, got, err, want)
		}
	}
	if err := s.EnsureDatabase(ctx, "wp_bl", "wp_bl", "pw", 5); err != nil {
		t.Fatal(err)
	}
	pos, err := s.GTIDPos(ctx)
	if err != nil || !strings.HasPrefix(pos, "0-1-") {
		t.Fatalf("GTIDPos = %q, %v", pos, err)
	}
	if _, err := os.Stat(filepath.Join(s.BinlogDir(), "mariadb-bin.000001")); err != nil {
		t.Fatal(err)
	}
}

// A data directory made while the binary log was off (the configuration
// before it) keeps its data when the server starts again with it on.
func TestBinlogOnExistingDataDir(t *testing.T) {
	if testing.Short() {
		t.Skip("starts mariadbd twice")
	}
	dir := t.TempDir()
	if _, err := fsperm.EnsureTraversable(dir); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	run := func(old bool, f func(s *Server)) {
		t.Helper()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		s := &Server{Dir: dir + "/db", Logger: log}
		if err := s.Prepare(ctx); err != nil {
			t.Fatal(err)
		}
		if old { // the configuration of before: no binary log
			b, err := os.ReadFile(s.cnf())
			if err != nil {
				t.Fatal(err)
			}
			c := string(b)
			i, j := strings.Index(c, "# Binary log"), strings.Index(c, "[client]")
			c = c[:i] + "skip-log-bin\n" + c[j:]
			if err := os.WriteFile(s.cnf(), []byte(c), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		done := make(chan error)
		go func() { done <- s.Run(ctx) }()
		defer func() { cancel(); <-done; s.Close() }()
		select {
		case <-s.Ready():
		case <-time.After(2 * time.Minute):
			t.Fatal("mariadb not ready")
		}
		f(s)
	}
	ctx := context.Background()
	run(true, func(s *Server) {
		if v, _ := s.QueryString(ctx, "SELECT @@log_bin"); v != "0" {
			t.Fatalf("old configuration: log_bin = %q", v)
		}
		if err := s.EnsureDatabase(ctx, "wp_old", "wp_old", "pw", 5); err != nil {
			t.Fatal(err)
		}
		if err := s.Exec(ctx, "CREATE TABLE wp_old.t (x int primary key)"); err != nil {
			t.Fatal(err)
		}
		if err := s.Exec(ctx, "INSERT INTO wp_old.t VALUES (1)"); err != nil {
			t.Fatal(err)
		}
	})
	run(false, func(s *Server) {
		if v, err := s.QueryString(ctx, "SELECT @@log_bin"); v != "1" {
			t.Fatalf("log_bin = %q, %v", v, err)
		}
		if err := s.Exec(ctx, "INSERT INTO wp_old.t VALUES (2)"); err != nil {
			t.Fatal(err)
		}
		if v, err := s.QueryString(ctx, "SELECT COUNT(*) FROM wp_old.t"); v != "2" {
			t.Fatalf("rows = %q, %v", v, err)
		}
		if pos, err := s.GTIDPos(ctx); err != nil || pos == "" {
			t.Fatalf("GTIDPos = %q, %v", pos, err)
		}
	})
}
