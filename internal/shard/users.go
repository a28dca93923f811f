package shard

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
)

// ensureUnixUser creates the site's system user and group (when running as
// root) and returns their ids; -1, -1 when not root.
func ensureUnixUser(ctx context.Context, name, home string) (int, int, error) {
	if os.Geteuid() != 0 {
		return -1, -1, nil
	}
	if uid, gid := lookupIDs(name); uid >= 0 {
		return uid, gid, nil
	}
	out, err := exec.CommandContext(ctx, "useradd", "--system", "--no-create-home", "--home-dir", home,
		"--shell", "/usr/sbin/nologin", "--user-group", "--comment", "aipress site", name).CombinedOutput()
	if err != nil {
		// A concurrent or earlier half-done useradd may have created it.
		if uid, gid := lookupIDs(name); uid >= 0 {
			return uid, gid, nil
		}
		return -1, -1, fmt.Errorf("useradd %s: %w: %s", name, err, strings.TrimSpace(string(out)))
	}
	uid, gid := lookupIDs(name)
	if uid < 0 {
		return -1, -1, fmt.Errorf("useradd %s: user not found after creation", name)
	}
	return uid, gid, nil
}

// lookupIDs returns the uid and gid of name, or -1, -1.
func lookupIDs(name string) (int, int) {
	if os.Geteuid() != 0 {
		return -1, -1
	}
	u, err := user.Lookup(name)
	if err != nil {
		return -1, -1
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err1 != nil || err2 != nil {
		return -1, -1
	}
	return uid, gid
}

// removeUnixUser deletes the site's user and group (idempotent).
func removeUnixUser(ctx context.Context, name string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	if uid, _ := lookupIDs(name); uid < 0 {
		return nil
	}
	out, err := exec.CommandContext(ctx, "userdel", name).CombinedOutput()
	if err != nil {
		return fmt.Errorf("userdel %s: %w: %s", name, err, strings.TrimSpace(string(out)))
	}
	if _, err := user.LookupGroup(name); err == nil {
		_ = exec.CommandContext(ctx, "groupdel", name).Run()
	}
	return nil
}

// shardUnixUsers lists the users in /etc/passwd whose home is below
// sitesDir: the site users of this shard, and only this shard.
func shardUnixUsers(sitesDir string) []string {
	f, err := os.Open("/etc/passwd")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	prefix := filepath.Clean(sitesDir) + string(filepath.Separator)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.Split(sc.Text(), ":")
		if len(parts) >= 6 && strings.HasPrefix(parts[5], prefix) {
			out = append(out, parts[0])
		}
	}
	return out
}
