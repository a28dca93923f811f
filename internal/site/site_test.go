package site

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestNormalizeDomain(t *testing.T) {
	tests := []struct {
		in, want string
		err      string
	}{
		{in: "blog.localhost", want: "blog.localhost"},
		{in: "  Blog.LocalHost ", want: "blog.localhost"},
		{in: "xn--bcher-kva.example", want: "xn--bcher-kva.example"},
		{in: "a-b.c-d.example.com", want: "a-b.c-d.example.com"},
		{in: "1password.com", want: "1password.com"},
		{in: "", err: "empty"},
		{in: "localhost", err: "two labels"},
		{in: "*.example.com", err: "wildcard"},
		{in: "a..b", err: "empty label"},
		{in: "example.com.", err: "empty label"},
		{in: "-a.com", err: "hyphen"},
		{in: "a-.com", err: "hyphen"},
		{in: "exa mple.com", err: "only letters"},
		{in: "a_b.com", err: "only letters"},
		{in: "bad/../x.com", err: "only letters"},
		{in: "ex\u00e4mple.com", err: "only letters"},
		{in: "127.0.0.1", err: "IP address"},
		{in: strings.Repeat("a", 64) + ".com", err: "63"},
		{in: strings.Repeat("abcdefghi.", 26) + "com", err: "253"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := NormalizeDomain(tt.in)
			if tt.err != "" {
				if err == nil || !errors.Is(err, ErrInvalidDomain) || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("NormalizeDomain(%q) = %q, %v; want error containing %q", tt.in, got, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("NormalizeDomain(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestSetCondition(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	t1 := t0.Add(time.Minute)
	t2 := t1.Add(time.Minute)
	var s Status
	if !s.SetCondition(Condition{Type: "Ready", Status: "False", Reason: "Installing", ObservedGeneration: 1}, t0) {
		t.Fatal("adding a condition reported no change")
	}
	if s.SetCondition(Condition{Type: "Ready", Status: "False", Reason: "Installing", ObservedGeneration: 1}, t1) {
		t.Fatal("setting the same condition reported a change")
	}
	// Same status, new reason: changed, but the transition time stays.
	if !s.SetCondition(Condition{Type: "Ready", Status: "False", Reason: "Waiting", ObservedGeneration: 1}, t1) {
		t.Fatal("new reason reported no change")
	}
	if got := s.Condition("Ready").LastTransitionTime; !got.Equal(t0) {
		t.Fatalf("transition time moved without a status flip: %v", got)
	}
	// Status flips: the transition time moves.
	s.SetCondition(Condition{Type: "Ready", Status: "True", Reason: "Serving", ObservedGeneration: 2}, t2)
	c := s.Condition("Ready")
	if !c.LastTransitionTime.Equal(t2) || c.ObservedGeneration != 2 || len(s.Conditions) != 1 {
		t.Fatalf("after flip: %+v (%d conditions)", c, len(s.Conditions))
	}
	if s.Condition("Other") != nil {
		t.Fatal("unknown condition found")
	}
}
