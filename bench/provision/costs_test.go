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
	c := costs(base, idle, 100)
	want := []RoleCost{
		{"mariadbd", Mem{120 << 20, 110 << 20}, Mem{1 << 20, 1 << 20}},
		{"php-fpm (master + workers)", Mem{40 << 20, 30 << 20}, Mem{}},
		{"aipress (platform process)", Mem{130 << 20, 128 << 20}, Mem{1 << 20, 1 << 20}},
		{"total", Mem{290 << 20, 268 << 20}, Mem{(190 << 20) / 100, (190 << 20) / 100}},
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
	printTable(&out, &Result{Sites: 100, MemBaseline: base, MemIdle: idle, Costs: c})
	for _, s := range []string{"Cost by role", "per shard: mariadbd + php-fpm (2 shard(s))", "70.0 MiB; 80.0 MiB", "≤ 150 MB per shard", "1024 KiB; 1024 KiB"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("report lacks %q:\n%s", s, out.String())
		}
	}
}
