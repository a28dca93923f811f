package cli

import (
	"strings"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/sitelog"
)

func TestSiteLogsGolden(t *testing.T) {
	h := newHarness(t)
	if _, _, err := h.run(t, "site", "create", "blog.localhost", "--title", "Blog", "--admin-email", "me@example.com", "--wait=false"); err != nil {
		t.Fatal(err)
	}
	if out, stderr, err := h.run(t, "site", "logs", "blog.localhost"); err != nil || out != "" || stderr != "No access log entries match for blog.localhost.\n" {
		t.Fatalf("no entries: %q %q %v", out, stderr, err)
	}
	w, err := sitelog.NewWriter(sitelog.WriterConfig{Dir: h.logs})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for i, e := range []sitelog.Entry{
		{Method: "GET", Path: "/", Status: 200, Bytes: 51234, DurationMS: 61.25, Cache: "MISS", ClientIP: "192.0.2.7", RequestID: "3f2a9c1e0b7d4a5c6e8f9012"},
		{Method: "GET", Path: "/", Status: 200, Bytes: 51234, DurationMS: 0.4, Cache: "HIT", ClientIP: "192.0.2.8", RequestID: "8d1e2f3a4b5c6d7e8f901234"},
		{Method: "GET", Path: "/missing/?utm_source=x", Status: 404, Bytes: 20012, DurationMS: 70.5, Cache: "MISS", ClientIP: "2001:db8::1", RequestID: "0a1b2c3d4e5f60718293a4b5"},
		{Method: "POST", Path: "/wp-login.php", Status: 502, Bytes: 312, DurationMS: 30001, ClientIP: "192.0.2.7", RequestID: "1b2c3d4e5f60718293a4b5c6"},
	} {
		e.Time, e.Site = created.Add(time.Duration(i)*time.Minute), "blog.localhost"
		if err := w.Write(e); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range []struct {
		golden string
		args   []string
	}{
		{"logs_table", []string{"site", "logs", "blog.localhost"}},
		{"logs_5xx_json", []string{"site", "logs", "blog.localhost", "--status", "5xx", "-o", "json"}},
		{"logs_since_limit_table", []string{"site", "logs", "blog.localhost", "--since", created.Add(time.Minute).Format(time.RFC3339), "--status", "2xx,404", "--limit", "2"}},
	} {
		out, stderr, err := h.run(t, s.args...)
		if err != nil || stderr != "" {
			t.Fatalf("%v: %v (stderr %q)", s.args, err, stderr)
		}
		golden(t, s.golden, stripCursors(out))
	}
	for _, s := range []struct {
		args []string
		want string
	}{
		{[]string{"site", "logs", "blog.localhost", "--status", "6xx"}, "want a code such as 404 or a class such as 5xx"},
		{[]string{"site", "logs", "blog.localhost", "--php", "--status", "5xx"}, "the PHP log has no status"},
		{[]string{"site", "logs", "blog.localhost", "--since", "yesterday"}, "want a duration"},
		{[]string{"site", "logs", "blog.localhost", "--php"}, "the site's php log is kept on its shard"},
		{[]string{"site", "logs", "nope.localhost"}, `site "nope.localhost" not found`},
	} {
		if _, _, err := h.run(t, s.args...); err == nil || !strings.Contains(err.Error(), s.want) {
			t.Errorf("%v: %v, want %q", s.args, err, s.want)
		}
	}
}

// stripCursors drops the cursors (inode numbers) from JSON lines.
func stripCursors(s string) string {
	var b strings.Builder
	for _, line := range strings.SplitAfter(s, "\n") {
		if i := strings.Index(line, `,"cursor":"`); i >= 0 {
			j := strings.Index(line[i+11:], `"`)
			line = line[:i] + line[i+11+j+1:]
		}
		b.WriteString(line)
	}
	return b.String()
}
