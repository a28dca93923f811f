package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestCosts(t *testing.T) {
	g := func(procs int, rss, pss uint64) Group {
		return Group{Procs: procs, Mem: Mem{RSS: rss << 20, PSS: pss << 20}}
	}
	snap := func(db, fpm, ai Group) MemSnapshot {
		s := MemSnapshot{MariaDB: db, PHPFPM: fpm, AIPress: ai}
		for _, x := range []Group{db, fpm, ai} {
			s.Total.Procs += x.Procs
			s.Total.add(x.Mem)
		}
		return s
	}
	base := snap(g(2, 120, 110), g(2, 40, 30), g(1, 130, 128))
	idle := snap(g(2, 220, 210), g(2, 30, 20), g(1, 230, 228)) // php-fpm shrank
	// At 50 sites: mariadbd had filled most of what it fills once.
	half := snap(g(2, 195, 185), g(2, 35, 25), g(1, 180, 178))
	c := costs(base, half, idle, 50, 100)
	want := []RoleCost{
		{"mariadbd", Mem{120 << 20, 110 << 20}, Mem{1 << 20, 1 << 20}, Mem{512 << 10, 512 << 10}},
		{"php-fpm (master + workers)", Mem{40 << 20, 30 << 20}, Mem{}, Mem{}},
		{"aipress (platform process)", Mem{130 << 20, 128 << 20}, Mem{1 << 20, 1 << 20}, Mem{1 << 20, 1 << 20}},
		{"total", Mem{290 << 20, 268 << 20}, Mem{(190 << 20) / 100, (190 << 20) / 100}, Mem{(70 << 20) / 50, (70 << 20) / 50}},
	}
	if len(c.Roles) != len(want) {
		t.Fatalf("%d roles, want %d", len(c.Roles), len(want))
	}
	for i, w := range want {
		if c.Roles[i] != w {
			t.Errorf("role %d: %+v, want %+v", i, c.Roles[i], w)
		}
	}
	if c.ShardsBase != 2 || c.ShardFixed != (Mem{80 << 20, 70 << 20}) {
		t.Errorf("shards %d, shard fixed %+v; want 2, 80/70 MiB", c.ShardsBase, c.ShardFixed)
	}
	var out bytes.Buffer
	printTable(&out, &Result{Sites: 100, HalfSites: 50, MemBaseline: base, MemHalfIdle: half, MemIdle: idle, Costs: c})
	for _, s := range []string{"Cost by role", "per shard: mariadbd + php-fpm (2 shard(s))", "70.0 MiB; 80.0 MiB", "≤ 150 MB per shard", "1024 KiB; 1024 KiB",
		"per idle site, 50 → 100 sites", "512 KiB; 512 KiB", "1434 KiB; 1434 KiB"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("report lacks %q:\n%s", s, out.String())
		}
	}
}

// TestCostsNoHalf: without an idle snapshot at N/2 (or with one at N) no
// slope is made up.
func TestCostsNoHalf(t *testing.T) {
	base := MemSnapshot{Total: Group{Mem: Mem{RSS: 100 << 20, PSS: 100 << 20}}}
	idle := MemSnapshot{Total: Group{Mem: Mem{RSS: 200 << 20, PSS: 200 << 20}}}
	for _, half := range []int{0, 10} {
		c := costs(base, MemSnapshot{}, idle, half, 10)
		if got := c.Roles[3]; got.Slope != (Mem{}) || got.PerSite != (Mem{RSS: 10 << 20, PSS: 10 << 20}) {
			t.Errorf("half %d: total %+v, want 10 MiB per site and no slope", half, got)
		}
	}
	var out bytes.Buffer
	printTable(&out, &Result{Sites: 10, MemBaseline: base, MemIdle: idle, Costs: costs(base, MemSnapshot{}, idle, 0, 10)})
	if strings.Contains(out.String(), "→") {
		t.Errorf("report has a slope column without a snapshot at N/2:\n%s", out.String())
	}
}
