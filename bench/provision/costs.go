package main

// RoleCost is one process role's memory: fixed (before any site) and what
// each idle site adds ((idle − baseline) / N, 0 when it shrank); with an
// idle snapshot at N/2 sites too, the slope between the two: (idle at N −
// idle at N/2) / (N − N/2), 0 when it shrank. The slope leaves out what
// the first sites fill once and no later site adds (a shard's buffer pool
// and table caches, the platform's first allocations).
type RoleCost struct {
	Role    string `json:"role"`
	Fixed   Mem    `json:"fixed"`
	PerSite Mem    `json:"per_idle_site"`
	Slope   Mem    `json:"per_idle_site_half_to_n"`
}

// Costs splits the platform's memory into fixed and per-site parts.
type Costs struct {
	Roles []RoleCost `json:"roles"` // mariadbd, php-fpm, aipress, total
	// Shards is the number of shards (mariadbd processes) before any site
	// and once idle; shards added during the run count towards the sites.
	ShardsBase int `json:"shards_base"`
	ShardsIdle int `json:"shards_idle"`
	// ShardFixed is a shard's own processes before any site (mariadbd and
	// the php-fpm master) per shard; the platform process (control
	// plane, edge and the in-process shard agents) is apart, in Roles.
	ShardFixed Mem `json:"shard_fixed"`
}

// costs computes Costs from the baseline and idle snapshots of n sites,
// and the slopes from the idle snapshot of half sites (0: none taken).
func costs(base, halfIdle, idle MemSnapshot, half, n int) Costs {
	per := func(b, i Mem, n int) Mem {
		var m Mem
		if n <= 0 {
			return m
		}
		if i.RSS > b.RSS {
			m.RSS = (i.RSS - b.RSS) / uint64(n)
		}
		if i.PSS > b.PSS {
			m.PSS = (i.PSS - b.PSS) / uint64(n)
		}
		return m
	}
	c := Costs{ShardsBase: base.MariaDB.Procs, ShardsIdle: idle.MariaDB.Procs}
	for _, r := range []struct {
		role          string
		b, half, idle Group
	}{
		{"mariadbd", base.MariaDB, halfIdle.MariaDB, idle.MariaDB},
		{"php-fpm (master + workers)", base.PHPFPM, halfIdle.PHPFPM, idle.PHPFPM},
		{"aipress (platform process)", base.AIPress, halfIdle.AIPress, idle.AIPress},
		{"total", base.Total, halfIdle.Total, idle.Total},
	} {
		rc := RoleCost{Role: r.role, Fixed: r.b.Mem, PerSite: per(r.b.Mem, r.idle.Mem, n)}
		if half > 0 && half < n {
			rc.Slope = per(r.half.Mem, r.idle.Mem, n-half)
		}
		c.Roles = append(c.Roles, rc)
	}
	k := uint64(max(c.ShardsBase, 1))
	shard := base.MariaDB.Mem
	shard.add(base.PHPFPM.Mem)
	c.ShardFixed = Mem{RSS: shard.RSS / k, PSS: shard.PSS / k}
	return c
}
