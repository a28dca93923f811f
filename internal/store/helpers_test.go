package store

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/site"
)

func TestPrepareUpdate(t *testing.T) {
	created := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	deleted := created.Add(time.Hour)
	base := func() *site.Site {
		return &site.Site{
			Metadata: site.Metadata{Name: "a.example.com", UID: "u1", Generation: 3, ResourceVersion: 7,
				CreatedAt: created, Labels: map[string]string{"team": "x"}},
			Spec:   site.Spec{Domain: "a.example.com", Title: "A"},
			Status: site.Status{Phase: "Ready", ObservedGeneration: 3},
		}
	}
	for _, c := range []struct {
		name      string
		mutate    func(*site.Site)
		invalid   bool
		wantWrite bool
		wantGen   int64
	}{
		{"nothing", func(*site.Site) {}, false, false, 3},
		{"spec", func(s *site.Site) { s.Spec.Title = "B" }, false, true, 4},
		{"status only", func(s *site.Site) { s.Status.Phase = "Failed" }, false, true, 3},
		{"labels", func(s *site.Site) { s.Metadata.Labels["team"] = "y" }, false, true, 4},
		{"labels nil to empty", func(s *site.Site) { s.Metadata.Labels = nil }, false, true, 4},
		{"deletion requested", func(s *site.Site) { s.Metadata.DeletionRequested = &deleted }, false, true, 4},
		{"generation and resource version ignored", func(s *site.Site) {
			s.Metadata.Generation, s.Metadata.ResourceVersion = 99, 99
		}, false, false, 3},
		{"created_at same instant", func(s *site.Site) { s.Metadata.CreatedAt = created.In(time.FixedZone("x", 3600)) }, false, true, 3},
		{"name", func(s *site.Site) { s.Metadata.Name = "b.example.com" }, true, false, 0},
		{"uid", func(s *site.Site) { s.Metadata.UID = "u2" }, true, false, 0},
		{"created_at", func(s *site.Site) { s.Metadata.CreatedAt = created.Add(time.Second) }, true, false, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			before, next := base(), base()
			c.mutate(next)
			write, err := PrepareUpdate(before, next)
			if c.invalid {
				if !errors.Is(err, ErrInvalid) || write {
					t.Fatalf("got write %v, err %v; want ErrInvalid", write, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if write != c.wantWrite {
				t.Errorf("write = %v, want %v", write, c.wantWrite)
			}
			if next.Metadata.Generation != c.wantGen {
				t.Errorf("generation = %d, want %d", next.Metadata.Generation, c.wantGen)
			}
			if next.Metadata.ResourceVersion != before.Metadata.ResourceVersion {
				t.Errorf("resource version = %d, want %d (the stored one)", next.Metadata.ResourceVersion, before.Metadata.ResourceVersion)
			}
			if before.Metadata.Generation != 3 {
				t.Errorf("before changed: generation %d", before.Metadata.Generation)
			}
		})
	}
}

func TestPrepareUpdateEmptyLabels(t *testing.T) {
	// nil and empty label maps are the same labels, and encode alike.
	before := &site.Site{Metadata: site.Metadata{Name: "a", UID: "u", Generation: 1}}
	next := &site.Site{Metadata: site.Metadata{Name: "a", UID: "u", Generation: 1, Labels: map[string]string{}}}
	write, err := PrepareUpdate(before, next)
	if err != nil || write || next.Metadata.Generation != 1 {
		t.Errorf("got write %v, generation %d, err %v; want no write, generation 1", write, next.Metadata.Generation, err)
	}
}

func TestValidateNewSite(t *testing.T) {
	now := time.Now()
	for _, c := range []struct {
		name string
		s    *site.Site
		ok   bool
	}{
		{"nil", nil, false},
		{"ok", &site.Site{Metadata: site.Metadata{Name: "a", UID: "u", CreatedAt: now}}, true},
		{"no name", &site.Site{Metadata: site.Metadata{UID: "u", CreatedAt: now}}, false},
		{"no uid", &site.Site{Metadata: site.Metadata{Name: "a", CreatedAt: now}}, false},
		{"no created_at", &site.Site{Metadata: site.Metadata{Name: "a", UID: "u"}}, false},
	} {
		err := ValidateNewSite(c.s)
		if c.ok && err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
		if !c.ok && (!errors.Is(err, ErrInvalid) || !strings.HasPrefix(err.Error(), "create site")) {
			t.Errorf("%s: got %v, want a create site error wrapping ErrInvalid", c.name, err)
		}
	}
}

func TestValidateNewToken(t *testing.T) {
	hash := strings.Repeat("0123456789abcdef", 4)
	for _, c := range []struct {
		name string
		t    Token
		ok   bool
	}{
		{"ok", Token{ID: "t1", Hash: hash}, true},
		{"no id", Token{Hash: hash}, false},
		{"no hash", Token{ID: "t1"}, false},
		{"short", Token{ID: "t1", Hash: hash[1:]}, false},
		{"long", Token{ID: "t1", Hash: hash + "0"}, false},
		{"upper case", Token{ID: "t1", Hash: strings.ToUpper(hash)}, false},
		{"not hex", Token{ID: "t1", Hash: "g" + hash[1:]}, false},
		{"a secret", Token{ID: "t1", Hash: "aip_" + hash[4:]}, false},
	} {
		err := ValidateNewToken(c.t)
		if c.ok && err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
		if !c.ok && !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: got %v, want ErrInvalid", c.name, err)
		}
	}
}

func TestPageLimit(t *testing.T) {
	for _, c := range []struct{ in, want int }{
		{-1, DefaultLimit}, {0, DefaultLimit}, {1, 1}, {100, 100}, {999, 999},
		{MaxLimit, MaxLimit}, {MaxLimit + 1, MaxLimit}, {1 << 40, MaxLimit},
	} {
		if got := PageLimit(c.in); got != c.want {
			t.Errorf("PageLimit(%d) = %d, want %d", c.in, got, c.want)
		}
	}
}

func TestContinueRoundTrip(t *testing.T) {
	for _, name := range []string{"a", "a.example.com", "ünïcode.example", "with:colon", strings.Repeat("x", 300)} {
		tok := EncodeContinue(name)
		if strings.ContainsAny(tok, "+/=") {
			t.Errorf("token %q is not unpadded URL-safe", tok)
		}
		got, err := DecodeContinue(tok)
		if err != nil || got != name {
			t.Errorf("DecodeContinue(EncodeContinue(%q)) = %q, %v", name, got, err)
		}
	}
	if got, err := DecodeContinue(""); got != "" || err != nil {
		t.Errorf(`DecodeContinue("") = %q, %v; want "", nil`, got, err)
	}
}

func TestDecodeContinueInvalid(t *testing.T) {
	for _, tok := range []string{
		"!!!",      // not base64
		"MTphYw==", // padded
		"MTo",      // "1:": no name
		"Mjph",     // "2:a": another version
		"YWJj",     // "abc": no version
		"MTphYw+/", // standard, not URL-safe, alphabet
	} {
		if _, err := DecodeContinue(tok); !errors.Is(err, ErrInvalid) {
			t.Errorf("DecodeContinue(%q): got %v, want ErrInvalid", tok, err)
		}
	}
}

func TestEncodeDecodeSite(t *testing.T) {
	created := time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)
	in := &site.Site{
		Metadata: site.Metadata{Name: "a.example.com", UID: "u1", Generation: 2, CreatedAt: created, Labels: map[string]string{"k": "v"}},
		Spec:     site.Spec{Domain: "a.example.com", Title: "A"},
		Status:   site.Status{Phase: "Ready", Shard: "local"},
	}
	md, sp, st, err := EncodeSite(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := DecodeSite("a.example.com", md, sp, st)
	if err != nil {
		t.Fatal(err)
	}
	if same, err := jsonEqual(in, out); err != nil || !same || !out.Metadata.CreatedAt.Equal(created) {
		t.Errorf("round trip: got %+v, want %+v", out, in)
	}
	for i, bad := range [][3][]byte{{[]byte("{"), sp, st}, {md, []byte("["), st}, {md, sp, []byte("x")}} {
		if _, err := DecodeSite("a.example.com", bad[0], bad[1], bad[2]); err == nil || !strings.Contains(err.Error(), `"a.example.com"`) {
			t.Errorf("bad column %d: got %v, want an error naming the site", i, err)
		}
	}
}

func TestNewTokenSecret(t *testing.T) {
	a, ha, err := NewTokenSecret()
	if err != nil {
		t.Fatal(err)
	}
	b, hb, _ := NewTokenSecret()
	if a == b || ha == hb || !strings.HasPrefix(a, TokenPrefix) || len(a) != len(TokenPrefix)+48 {
		t.Errorf("secrets %q %q", a, b)
	}
	if ha != TokenHash(a) || ValidateNewToken(Token{ID: "x", Hash: ha}) != nil {
		t.Errorf("hash %q of %q is not a valid stored token hash", ha, a)
	}
}
