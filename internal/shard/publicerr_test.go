package shard

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"testing"
)

// publicMessage keeps the detail of an error in the log and puts a short
// reason with a reference in what viewers read.
func TestPublicMessage(t *testing.T) {
	const secret = "hunter2-db-password"
	stderr := fmt.Errorf("install.php: exit status 255: PHP Fatal error: Access denied for user 'wp_1'@'localhost' (using password: %s) in /srv/aipress/shards/local/sites/abc/htdocs/wp-includes/class-wpdb.php:1", secret)
	tests := []struct {
		name, what string
		err        error
		want       string // the message up to the reference
		public     bool   // shown as is, no reference
	}{
		{name: "plain error", what: "convergence", err: stderr, want: "convergence failed"},
		{name: "failed step", what: "convergence", err: failed("WordPress installation", stderr), want: "WordPress installation failed"},
		{name: "wrapped step", what: "convergence", err: fmt.Errorf("site x: %w", failed("creating the database", stderr)), want: "creating the database failed"},
		{name: "first step of a join", what: "convergence", err: errors.Join(failed("WordPress installation", stderr), failed("starting the PHP pool", stderr)), want: "WordPress installation failed"},
		{name: "public error", what: "convergence", err: publicf("WordPress core 4.0 is not available on shard s1 (it has 6.1.9)"), want: "WordPress core 4.0 is not available on shard s1 (it has 6.1.9)", public: true},
		{name: "public error under unsafe context", what: "the restore job", err: fmt.Errorf("%s: %w", stderr, publicf("restore job without a snapshot")), want: "restore job without a snapshot", public: true},
	}
	ref := regexp.MustCompile(`^ \(details in the log of shard s1, ref ([0-9a-f]{8})\)$`)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			s := &Shard{cfg: Config{Name: "s1"}, log: slog.New(slog.NewTextHandler(&logs, nil))}
			got := s.publicMessage(nil, tc.what, tc.err)
			rest, ok := strings.CutPrefix(got, tc.want)
			if !ok {
				t.Fatalf("message %q, want it to start with %q", got, tc.want)
			}
			for _, leak := range []string{secret, "/srv/", "Fatal", "wp_1", "exit status"} {
				if strings.Contains(got, leak) {
					t.Errorf("message %q shows %q", got, leak)
				}
			}
			if !strings.Contains(logs.String(), tc.err.Error()) && !strings.Contains(logs.String(), fmt.Sprintf("%q", tc.err.Error())) {
				t.Errorf("the log lacks the whole error:\n%s", logs.String())
			}
			if tc.public {
				if rest != "" {
					t.Errorf("public message got a suffix: %q", got)
				}
				return
			}
			m := ref.FindStringSubmatch(rest)
			if m == nil {
				t.Fatalf("message %q: no reference after the reason", got)
			}
			if !strings.Contains(logs.String(), "ref="+m[1]) {
				t.Errorf("the log does not carry ref %s:\n%s", m[1], logs.String())
			}
			// The same failure again gives the same text (no status churn);
			// another failure another reference.
			if again := s.publicMessage(nil, tc.what, tc.err); again != got {
				t.Errorf("the same error gave %q, then %q", got, again)
			}
			if other := s.publicMessage(nil, tc.what, fmt.Errorf("other: %w", tc.err)); other == got {
				t.Errorf("a different error gave the same message %q", other)
			}
		})
	}
}
