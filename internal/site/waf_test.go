package site

import (
	"errors"
	"strings"
	"testing"
)

func TestParseWAFExclusion(t *testing.T) {
	tests := []struct {
		in   string
		want WAFExclusion
		err  string
	}{
		{in: "942190:/:s", want: WAFExclusion{RuleID: 942190, Path: "/", Argument: "s"}},
		{in: "942190:/*", want: WAFExclusion{RuleID: 942190, Path: "/*"}},
		{in: "941100:/wp-json/wc/v3/*:json.meta_data.0.value", want: WAFExclusion{RuleID: 941100, Path: "/wp-json/wc/v3/*", Argument: "json.meta_data.0.value"}},
		{in: "932236:/2024/05/caf\u00e9/:data[wp_autosave][content]", want: WAFExclusion{RuleID: 932236, Path: "/2024/05/caf\u00e9/", Argument: "data[wp_autosave][content]"}},
		{in: "10008:/wp-json/wp/v2/posts/*", want: WAFExclusion{RuleID: 10008, Path: "/wp-json/wp/v2/posts/*"}},
		{in: "942190", err: "want RULE:PATH"},
		{in: "942190:/:s:t", err: "want RULE:PATH"},
		{in: "x:/:s", err: "not a number"},
		{in: "0:/", err: "out of range"},
		{in: "1000000:/", err: "out of range"},
		{in: "942190:/:", err: "empty argument"},
		{in: "942190::s", err: "is empty"},
		{in: "942190:wp-login.php", err: "must start with '/'"},
		{in: "942190:/a*b", err: "'*' only at its end"},
		{in: "942190:/a?b", err: "may not contain"},
		{in: "942190:/a b", err: "spaces"},
		{in: "942190:/a\x01", err: "control"},
		{in: "942190:/a/../b", err: "not clean"},
		{in: "942190://a", err: "not clean"},
		{in: "942190:/a/./", err: "not clean"},
		{in: "942190:/" + strings.Repeat("a", MaxWAFExclusionPath), err: "longer than"},
		{in: "942190:/:a b", err: "argument"},
		{in: "942190:/:" + strings.Repeat("a", MaxWAFArgument+1), err: "argument"},
		{in: "942190:/:a=b", err: "argument"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseWAFExclusion(tt.in)
			if tt.err != "" {
				if err == nil || !errors.Is(err, ErrInvalidExclusion) || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("ParseWAFExclusion(%q) = %+v, %v; want error containing %q", tt.in, got, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseWAFExclusion(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
			}
			if back, err := ParseWAFExclusion(got.String()); err != nil || back != got {
				t.Errorf("round trip via %q = %+v, %v", got.String(), back, err)
			}
		})
	}
}

func TestWAFExclusionCovers(t *testing.T) {
	tests := []struct {
		ex         string
		rule       int
		path, arg  string
		want       bool
		whyNotSame string
	}{
		{"942190:/:s", 942190, "/", "s", true, ""},
		{"942190:/:s", 942190, "/", "S", true, "arguments match case-insensitively"},
		{"942190:/:s", 942190, "/", "q", false, "another argument"},
		{"942190:/:s", 942190, "/", "", false, "the whole rule is more than one argument"},
		{"942190:/:s", 942100, "/", "s", false, "another rule"},
		{"942190:/:s", 942190, "/page/2/", "s", false, "exact path"},
		{"942190:/*:s", 942190, "/page/2/", "s", true, ""},
		{"942190:/shop/*", 942190, "/shop/", "x", true, "prefix includes itself"},
		{"942190:/shop/*", 942190, "/shop", "x", false, ""},
		{"942190:/shop*", 942190, "/shopping", "x", true, "a prefix is a string prefix"},
		{"942190:/shop/*", 942190, "/shop/../wp-login.php", "x", false, "unclean paths match nothing"},
		{"942190:/shop/*", 942190, "/shop//x", "x", false, "unclean paths match nothing"},
		{"942190:/wp-login.php", 942190, "/wp-login.php", "log", true, "no argument: every argument"},
	}
	for _, tt := range tests {
		e, err := ParseWAFExclusion(tt.ex)
		if err != nil {
			t.Fatal(err)
		}
		if got := e.Covers(tt.rule, tt.path, tt.arg); got != tt.want {
			t.Errorf("%s covers (%d, %q, %q) = %v, want %v (%s)", tt.ex, tt.rule, tt.path, tt.arg, got, tt.want, tt.whyNotSame)
		}
	}
}
