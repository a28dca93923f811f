package benchplatform

import (
	"fmt"
	"time"

	"github.com/prometheus/procfs"
)

// userHZ is the kernel's clock ticks per second for /proc/<pid>/stat's
// times (100 on Linux; procfs uses the same).
const userHZ = 100

// TreeCPU is the CPU time used so far by pid and every process below it
// (for the platform: aipress, MariaDB, php-fpm masters and workers),
// exited ones included once their parent in the tree has reaped them (a
// parent's cutime and cstime). Two readings around a load run give the
// CPU the platform spent on it, whatever else runs on the machine.
func TreeCPU(pid int) (time.Duration, error) {
	by, err := TreeCPUByName(pid)
	var sum time.Duration
	for _, d := range by {
		sum += d
	}
	return sum, err
}

// TreeCPUByName is TreeCPU split by process name (comm: "aipress",
// "mariadbd", "php-fpm8.2", …); a reaped process counts under its
// parent's name.
func TreeCPUByName(pid int) (map[string]time.Duration, error) {
	procs, err := procfs.AllProcs()
	if err != nil {
		return nil, fmt.Errorf("cpu of process tree: %w", err)
	}
	parent := map[int]int{}
	ticks := map[int]int64{}
	name := map[int]string{}
	for _, pr := range procs {
		st, err := pr.Stat()
		if err != nil {
			continue // exited meanwhile
		}
		parent[pr.PID] = st.PPID
		name[pr.PID] = st.Comm
		ticks[pr.PID] = int64(st.UTime) + int64(st.STime) + int64(st.CUTime) + int64(st.CSTime)
	}
	if _, ok := parent[pid]; !ok {
		return nil, fmt.Errorf("cpu of process tree: no process %d", pid)
	}
	by := map[string]time.Duration{}
	for p, t := range ticks {
		for q, hops := p, 0; q > 0 && hops < 64; q, hops = parent[q], hops+1 {
			if q == pid {
				by[name[p]] += time.Duration(t) * time.Second / userHZ
				break
			}
		}
	}
	return by, nil
}
