package store

import (
	"errors"
	"strings"
	"testing"
)

func TestValidOrgName(t *testing.T) {
	for _, tc := range []struct {
		name string
		want bool
	}{
		{"a", true},
		{"acme", true},
		{"acme-2", true},
		{"a" + strings.Repeat("0", 62), true},
		{"a" + strings.Repeat("0", 63), false},
		{"", false},
		{"Acme", false},
		{"2acme", false},
		{"-acme", false},
		{"ac_me", false},
		{"ac.me", false},
		{"acmé", false},
		{"ac me", false},
	} {
		if got := ValidOrgName(tc.name); got != tc.want {
			t.Errorf("ValidOrgName(%q) = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestNormalizeEmail(t *testing.T) {
	for _, tc := range []struct {
		in, want string // want "" means invalid
	}{
		{"someone@example.com", "someone@example.com"},
		{"Some.One+tag@Example.COM", "some.one+tag@example.com"},
		{"", ""},
		{"someone", ""},
		{"@example.com", ""},
		{"Bob <bob@example.com>", ""},
		{" bob@example.com", ""},
		{"bob@example.com ", ""},
		{"a@b@c", ""},
	} {
		got, err := NormalizeEmail(tc.in)
		if tc.want == "" {
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("NormalizeEmail(%q) = %q, %v; want ErrInvalid", tc.in, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("NormalizeEmail(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestTokenKindFilter(t *testing.T) {
	if k := TokenKindFilter(""); k != nil {
		t.Errorf("no kind selects %v, want all (nil)", k)
	}
	if k := TokenKindFilter(TokenAPI); len(k) != 2 {
		t.Errorf("api selects %v, want api and the empty kind", k)
	}
	if k := TokenKindFilter(TokenSession); len(k) != 1 || k[0] != "session" {
		t.Errorf("session selects %v", k)
	}
}
