package shard_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/shard"
	"github.com/aipress/aipress/internal/site"
)

// lockedBuffer is a log sink that several goroutines may write.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// failingInstaller is an install script that fails the way a broken
// WordPress does, with the site's database password, a path and a fatal
// error on stderr.
const failingInstaller = `<?php
$cfg = file_get_contents(getenv('AIP_DOCROOT') . '/wp-config.php');
preg_match("/'DB_PASSWORD', '([^']*)'/", $cfg, $m);
fwrite(STDERR, "PHP Fatal error:  Uncaught mysqli_sql_exception: Access denied (using password: " . $m[1] . ") in " . getenv('AIP_DOCROOT') . "/wp-includes/class-wpdb.php:1\n");
exit(255);
`

// A failing WordPress installation shows viewers a short reason in the
// site's condition; the installer's stderr (with the database password and
// paths) is in the shard's log only.
func TestFailedInstallShowsNoStderr(t *testing.T) {
	c := newCluster(t)
	logs := &lockedBuffer{}
	c.log = slog.New(slog.NewTextHandler(io.MultiWriter(logs, os.Stderr), &slog.HandlerOptions{Level: slog.LevelWarn}))
	sh := c.start("alpha")
	defer c.deleteAll()
	if err := os.WriteFile(filepath.Join(c.dir, "shard-alpha", "lib", "install.php"), []byte(failingInstaller), 0o644); err != nil {
		t.Fatal(err)
	}
	const host = "broken.localhost"
	s := &site.Site{
		Metadata: site.Metadata{Name: host, UID: "uid-broken", CreatedAt: time.Now().UTC()},
		Spec:     site.Spec{Domain: host, Title: "Broken", Plan: "basic", Admin: site.Admin{User: "admin", Email: "a@example.com"}},
		Status:   site.Status{Phase: site.PhasePending, Shard: "alpha"},
	}
	if err := c.st.CreateSite(c.ctx, s); err != nil {
		t.Fatal(err)
	}
	if err := c.converge("alpha"); err == nil {
		t.Fatal("convergence with a failing installer reported no error")
	}
	got := c.get(host)
	cond := got.Status.Condition(shard.CondServing)
	if got.Status.Phase != site.PhaseFailed || cond == nil || cond.Reason != "ConvergeFailed" {
		t.Fatalf("phase %s, conditions %+v", got.Status.Phase, got.Status.Conditions)
	}
	var sec struct {
		DBPassword string `json:"db_password"`
	}
	n := sh.NamesFor("uid-broken")
	b, err := os.ReadFile(filepath.Join(n.Dir, "secrets.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &sec); err != nil || sec.DBPassword == "" {
		t.Fatalf("secrets.json: %v", err)
	}
	if !strings.HasPrefix(cond.Message, "WordPress installation failed (details in the log of shard alpha, ref ") {
		t.Errorf("condition message %q", cond.Message)
	}
	for _, leak := range []string{sec.DBPassword, n.Docroot, "/", "Fatal", "mysqli", "exit status"} {
		if strings.Contains(cond.Message, leak) {
			t.Errorf("condition message %q shows %q", cond.Message, leak)
		}
	}
	ref := strings.TrimSuffix(cond.Message[strings.LastIndex(cond.Message, "ref ")+4:], ")")
	log := logs.String()
	for _, want := range []string{"ref=" + ref, sec.DBPassword, "PHP Fatal error", n.Docroot} {
		if !strings.Contains(log, want) {
			t.Errorf("the shard log lacks %q", want)
		}
	}
}
