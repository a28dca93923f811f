package sitefw

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
)

// processTable matches the names ProcessTable makes: key, PID namespace,
// PID and the process's start time.
var processTable = regexp.MustCompile(`^aipress_([0-9a-f]{8})_([0-9]+)_([0-9]+)_([0-9]+)$`)

// ProcessTable names the table a shard process keeps for its life:
// "aipress_KEY_PIDNS_PID_START", KEY a hash of key (the shard's directory),
// PIDNS the inode of the process's PID namespace, START its start time
// since boot. The process deletes the table when it stops; if it dies
// without that, any AIPress process of the same PID namespace that applies
// rules later finds the PID gone (or reused: another start time) and
// deletes the table, so a freed UID in a dead shard's set never keeps
// matching a live shard's new user. Names without this shape (an init
// step's) are never collected.
func ProcessTable(key string) string {
	h := sha256.Sum256([]byte(key))
	pid := os.Getpid()
	return fmt.Sprintf("aipress_%s_%d_%d_%d", hex.EncodeToString(h[:4]), pidNamespace(), pid, startTime(pid))
}

// deadProcessTable reports whether name is a ProcessTable of a process of
// this PID namespace that no longer runs.
func deadProcessTable(name string) bool {
	m := processTable.FindStringSubmatch(name)
	if m == nil {
		return false
	}
	ns, err1 := strconv.ParseUint(m[2], 10, 64)
	pid, err2 := strconv.Atoi(m[3])
	start, err3 := strconv.ParseUint(m[4], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || ns != pidNamespace() || ns == 0 {
		return false // another PID namespace's: not ours to judge
	}
	return startTime(pid) != start
}

// pidNamespace is the inode of this process's PID namespace (0 if unknown).
func pidNamespace() uint64 {
	fi, err := os.Stat("/proc/self/ns/pid")
	if err != nil {
		return 0
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ino
	}
	return 0
}

// startTime is the start time of process pid in clock ticks since boot
// (/proc/PID/stat field 22), 0 when there is no such process.
func startTime(pid int) uint64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	// The command name (field 2) may hold spaces and parentheses.
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	fields := strings.Fields(s[i+1:])
	// fields[0] is field 3 (state); field 22 is fields[19].
	if len(fields) < 20 {
		return 0
	}
	v, err := strconv.ParseUint(fields[19], 10, 64)
	if err != nil {
		return 0
	}
	return v
}
