package shard

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// ensureUnixUser creates the site's system user and group (when running as
// root) and returns their ids; -1, -1 when not root. A user of that name
// whose home is not home belongs to someone else (another shard on this
// host): that is an error, never a user to share.
func ensureUnixUser(ctx context.Context, name, home string) (int, int, error) {
	if os.Geteuid() != 0 {
		return -1, -1, nil
	}
	if uid, gid := lookupIDs(name); uid >= 0 {
		if err := adoptOrCheckHome(ctx, name, home); err != nil {
			return -1, -1, err
		}
		return uid, gid, nil
	}
	var out []byte
	var err error
	// Shards on one host add users concurrently; useradd gives up at once
	// when another holds the lock on /etc/passwd.
	for attempt := 0; attempt < 20; attempt++ {
		out, err = exec.CommandContext(ctx, "useradd", "--system", "--no-create-home", "--home-dir", home,
			"--shell", "/usr/sbin/nologin", "--user-group", "--comment", "aipress site", name).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "lock") {
			break
		}
		select {
		case <-ctx.Done():
			return -1, -1, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	if err != nil {
		// A concurrent or earlier half-done useradd may have created it.
		if uid, gid := lookupIDs(name); uid >= 0 {
			return uid, gid, checkHome(name, home)
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

// adoptOrCheckHome checks that user name's home is home. A user whose home
// directory no longer exists is a leftover (of a data directory removed
// without its sites' teardown) that no live site uses: it is adopted by
// pointing its home at home.
func adoptOrCheckHome(ctx context.Context, name, home string) error {
	err := checkHome(name, home)
	if err == nil {
		return nil
	}
	u, lerr := user.Lookup(name)
	if lerr != nil {
		return err
	}
	if _, serr := os.Stat(u.HomeDir); !errors.Is(serr, os.ErrNotExist) {
		return err
	}
	out, merr := exec.CommandContext(ctx, "usermod", "--home", home, name).CombinedOutput()
	if merr != nil {
		return fmt.Errorf("usermod %s: %w: %s", name, merr, strings.TrimSpace(string(out)))
	}
	return nil
}

// checkHome fails unless user name's home directory is home.
func checkHome(name, home string) error {
	u, err := user.Lookup(name)
	if err != nil {
		return fmt.Errorf("look up user %s: %w", name, err)
	}
	if filepath.Clean(u.HomeDir) != filepath.Clean(home) {
		return fmt.Errorf("unix user %s exists with home %s, not %s: it belongs to another shard or program", name, u.HomeDir, home)
	}
	return nil
}

// removeUnixUser deletes the site's user and group (idempotent). A user of
// that name whose home is not home is not this shard's and is left alone.
func removeUnixUser(ctx context.Context, name, home string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	if uid, _ := lookupIDs(name); uid < 0 {
		return nil
	}
	if checkHome(name, home) != nil {
		return nil // not this shard's
	}
	var out []byte
	var err error
	for attempt := 0; attempt < 20; attempt++ {
		out, err = exec.CommandContext(ctx, "userdel", name).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "lock") {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
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
