package shard

import "testing"

func TestFirstCronTime(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{`a:3:{i:1733500000;a:1:{s:16:"wp_version_check";a:1:{`, 1733500000, true},
		{`a:12:{i:42;a:1:{`, 42, true},
		{`a:1:{s:7:"version";i:2;}`, 0, false}, // no event scheduled
		{``, 0, false},
		{`b:0;`, 0, false},
		{`a:x:{i:5;`, 0, false},
		{`a:2:{i:;a:`, 0, false},
		{`a:2:{i:17335000000000000000000;a:`, 0, false}, // overflow
		{`a:2:{i:-5;a:`, -5, true},                      // in the past: due
		{`a:2:{s:3:"abc";i:1;}`, 0, false},
	} {
		got, ok := firstCronTime(c.in)
		if got != c.want || ok != c.ok {
			t.Errorf("firstCronTime(%q) = %d, %v; want %d, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}
