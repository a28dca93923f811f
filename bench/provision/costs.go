package main

// RoleCost is one process role's memory: fixed (before any site) and what
// each idle site adds ((idle − baseline) / N, 0 when it shrank).
type RoleCost struct {
	Role    string `json:"role"`
	Fixed   Mem    `json:"fixed"`
	PerSite Mem    `json:"per_idle_site"`
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

// costs computes Costs from the baseline and idle snapshots of n sites.
func costs(base, idle MemSnapshot, n int) Costs {
	perSite := func(b, i Mem) Mem {
		var m Mem
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
		role    string
		b, idle Group
	}{
		{"mariadbd", base.MariaDB, idle.MariaDB},
		{"php-fpm (master + workers)", base.PHPFPM, idle.PHPFPM},
		{"aipress (platform process)", base.AIPress, idle.AIPress},
		{"total", base.Total, idle.Total},
	} {
		c.Roles = append(c.Roles, RoleCost{Role: r.role, Fixed: r.b.Mem, PerSite: perSite(r.b.Mem, r.idle.Mem)})
	}
	k := uint64(max(c.ShardsBase, 1))
	shard := base.MariaDB.Mem
	shard.add(base.PHPFPM.Mem)
	c.ShardFixed = Mem{RSS: shard.RSS / k, PSS: shard.PSS / k}
	return c
}
