package shard

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aipress/aipress/internal/sitefw"
)

// SiteUserFilter is told the UIDs of a shard's site users, so that rules
// matching them (package sitefw: kept off loopback services and the
// metadata address) cover each user before anything runs as it.
// *sitefw.Firewall implements it.
type SiteUserFilter interface {
	SetUIDs(uids ...uint32) error
	AddUIDs(uids ...uint32) error
	RemoveUIDs(uids ...uint32) error
}

// ensureSiteUser is ensureUnixUser for site n, with the new user's UID put
// in the shard's site-user filter before it is returned.
func (s *Shard) ensureSiteUser(ctx context.Context, n Names) (int, int, error) {
	uid, gid, err := ensureUnixUser(ctx, n.Unix, n.Dir, s.cfg.SiteIDs)
	if err != nil || uid <= 0 || s.cfg.SiteUsers == nil {
		return uid, gid, err
	}
	if err := s.cfg.SiteUsers.AddUIDs(uint32(uid)); err != nil {
		return -1, -1, fmt.Errorf("site user %s: %w", n.Unix, err)
	}
	return uid, gid, nil
}

// removeSiteUser removes site n's user and then takes its UID out of the
// filter.
func (s *Shard) removeSiteUser(ctx context.Context, n Names) error {
	uid, _ := lookupIDs(n.Unix)
	if err := removeUnixUser(ctx, n.Unix, n.Dir); err != nil {
		return err
	}
	if uid > 0 && s.cfg.SiteUsers != nil && lookupUID(n.Unix) < 0 {
		return s.cfg.SiteUsers.RemoveUIDs(uint32(uid))
	}
	return nil
}

// syncSiteUsers gives the filter exactly the UIDs of the shard's site users
// (those in /etc/passwd whose home is below its sites directory, inside
// the ID range or older ones outside it).
func (s *Shard) syncSiteUsers() error {
	if s.cfg.SiteUsers == nil {
		return nil
	}
	var uids []uint32
	for _, name := range shardUnixUsers(s.sitesDir()) {
		if uid, _ := lookupIDs(name); uid > 0 {
			uids = append(uids, uint32(uid))
		}
	}
	if err := s.cfg.SiteUsers.SetUIDs(uids...); err != nil {
		return fmt.Errorf("site users: %w", err)
	}
	return nil
}

// ensureUnixUser creates the site's system user and group (when running as
// root) and returns their ids; -1, -1 when not root. A user of that name
// whose home is not home belongs to someone else (another shard on this
// host): that is an error, never a user to share.
//
// New users and groups get IDs from ids (useradd's system allocation,
// confined to the range), so that a firewall that matches the range
// (sitefw, a Kubernetes pod's init step) covers them before they exist.
// A user created anew for a site whose files are already there (a pod's
// fresh /etc/passwd after a restart, files of a user made before the range
// existed) takes the IDs its files carry when those are in the range and
// free, so its files keep their owner; otherwise its files are re-owned
// from the old IDs to the new ones (reown). Users that exist keep their IDs.
func ensureUnixUser(ctx context.Context, name, home string, ids sitefw.IDRange) (int, int, error) {
	if os.Geteuid() != 0 {
		return -1, -1, nil
	}
	if uid, gid := lookupIDs(name); uid >= 0 {
		if err := adoptOrCheckHome(ctx, name, home); err != nil {
			return -1, -1, err
		}
		return uid, gid, reownIfMoved(home, uid, gid)
	}
	if ids == (sitefw.IDRange{}) {
		ids = sitefw.DefaultSiteIDs
	}
	args := []string{"--system", "--no-create-home", "--home-dir", home,
		"--shell", "/usr/sbin/nologin", "--user-group", "--comment", "aipress site",
		"-K", fmt.Sprintf("SYS_UID_MIN=%d", ids.First), "-K", fmt.Sprintf("SYS_UID_MAX=%d", ids.Last),
		"-K", fmt.Sprintf("SYS_GID_MIN=%d", ids.First), "-K", fmt.Sprintf("SYS_GID_MAX=%d", ids.Last)}
	if prev, _ := previousIDs(home); ids.Contains(prev) && idFree(prev) {
		args = append(args, "--uid", strconv.Itoa(prev))
	}
	out, err := useradd(ctx, append(args, name))
	if err != nil && strings.Contains(string(out), "not unique") && args[len(args)-2] == "--uid" {
		// Taken meanwhile by another shard of this host.
		out, err = useradd(ctx, append(args[:len(args)-2:len(args)-2], name))
	}
	if err != nil {
		// A concurrent or earlier half-done useradd may have created it.
		if uid, gid := lookupIDs(name); uid >= 0 {
			if err := checkHome(name, home); err != nil {
				return -1, -1, err
			}
			return uid, gid, reownIfMoved(home, uid, gid)
		}
		return -1, -1, fmt.Errorf("useradd %s: %w: %s", name, err, strings.TrimSpace(string(out)))
	}
	uid, gid := lookupIDs(name)
	if uid < 0 {
		return -1, -1, fmt.Errorf("useradd %s: user not found after creation", name)
	}
	return uid, gid, reownIfMoved(home, uid, gid)
}

// useradd runs useradd with args (shadowTool).
func useradd(ctx context.Context, args []string) ([]byte, error) {
	return shadowTool(ctx, "useradd", args...)
}

// shadowTool runs one of the tools that change /etc/passwd (useradd,
// userdel, usermod, groupmod) with args, retrying while another process
// holds its lock (shards on one host add users concurrently, and the
// tools give up at once).
func shadowTool(ctx context.Context, tool string, args ...string) ([]byte, error) {
	var out []byte
	var err error
	for attempt := 0; attempt < 20; attempt++ {
		out, err = exec.CommandContext(ctx, tool, args...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "lock") {
			break
		}
		select {
		case <-ctx.Done():
			return out, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return out, err
}

// idFree reports whether no user has UID id and no group GID id.
func idFree(id int) bool {
	_, errU := user.LookupId(strconv.Itoa(id))
	_, errG := user.LookupGroupId(strconv.Itoa(id))
	var uu user.UnknownUserIdError
	var ug user.UnknownGroupIdError
	return errors.As(errU, &uu) && errors.As(errG, &ug)
}

// previousIDs are the user and group IDs the files of the site at home
// carry: the owner of its private tmp directory (mode 0700, the site's user
// and group, in a root-owned directory the site cannot change), or -1.
func previousIDs(home string) (int, int) {
	fi, err := os.Lstat(filepath.Join(home, "tmp"))
	if err != nil || !fi.IsDir() {
		return -1, -1
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || st.Uid == 0 || st.Gid == 0 {
		return -1, -1
	}
	return int(st.Uid), int(st.Gid)
}

// reownIfMoved re-owns the site's files when its user's IDs are no longer
// those its files carry (see ensureUnixUser): every entry below home owned
// by the old user gets the new one, every entry of the old group the new
// group (root-owned files with the site's group, such as wp-config.php,
// included). Links are changed, never followed. It is repeated on every
// pass until tmp carries the new IDs, so a crash half-way is finished later;
// nothing is removed.
func reownIfMoved(home string, uid, gid int) error {
	oldUID, oldGID := previousIDs(home)
	if oldUID < 0 || (oldUID == uid && oldGID == gid) {
		return nil
	}
	tmp := filepath.Join(home, "tmp")
	err := filepath.WalkDir(home, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if path == tmp {
			return nil // last: it records the old IDs until the end
		}
		return reownEntry(path, oldUID, oldGID, uid, gid)
	})
	if err == nil {
		err = reownEntry(tmp, oldUID, oldGID, uid, gid)
	}
	if err != nil {
		return fmt.Errorf("re-own the files of %s from %d:%d to %d:%d: %w", home, oldUID, oldGID, uid, gid, err)
	}
	return nil
}

func reownEntry(path string, oldUID, oldGID, uid, gid int) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return err
	}
	st := fi.Sys().(*syscall.Stat_t)
	u, g := -1, -1
	if int(st.Uid) == oldUID {
		u = uid
	}
	if int(st.Gid) == oldGID {
		g = gid
	}
	if u < 0 && g < 0 {
		return nil
	}
	// chown clears set-ID bits, as it should for files of a site.
	return os.Lchown(path, u, g)
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
	uid, _ := lookupIDs(name)
	if uid < 0 {
		return nil
	}
	if checkHome(name, home) != nil {
		return nil // not this shard's
	}
	// Its pool is gone by now; whatever still runs as the site (a WP-Cron
	// run, a worker php-fpm has not reaped yet) is ended: userdel refuses
	// a user with processes, and a deleted site runs nothing.
	killUserProcesses(uid)
	out, err := shadowTool(ctx, "userdel", name)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
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
	var out []string
	for _, u := range usersUnder(sitesDir) {
		out = append(out, u.name)
	}
	return out
}

// passwdUser is a user's name and home directory in /etc/passwd.
type passwdUser struct{ name, home string }

// usersUnder lists the users in /etc/passwd whose home is below dir.
func usersUnder(dir string) []passwdUser {
	f, err := os.Open("/etc/passwd")
	if err != nil {
		return nil
	}
	defer f.Close()
	users, _ := passwdUsersUnder(f, dir)
	return users
}

// passwdUsersUnder returns the users in passwd (the format of /etc/passwd)
// whose home directory is below dir.
func passwdUsersUnder(passwd io.Reader, dir string) ([]passwdUser, error) {
	var out []passwdUser
	prefix := filepath.Clean(dir) + string(filepath.Separator)
	sc := bufio.NewScanner(passwd)
	for sc.Scan() {
		parts := strings.Split(sc.Text(), ":")
		if len(parts) >= 6 && strings.HasPrefix(parts[5], prefix) {
			out = append(out, passwdUser{parts[0], parts[5]})
		}
	}
	return out, sc.Err()
}

// RemoveUsersUnder removes the Unix users (and groups) whose home is below
// dir, ending their processes first, and returns how many it removed: the
// site users that shards with their data below dir made, for a data
// directory that goes away without its sites' deletion (a test's or a
// benchmark's; an operator's wipe). Without root it does nothing.
func RemoveUsersUnder(ctx context.Context, dir string) (int, error) {
	if os.Geteuid() != 0 {
		return 0, nil
	}
	var errs []error
	n := 0
	for _, u := range usersUnder(dir) {
		if err := removeUnixUser(ctx, u.name, u.home); err != nil {
			errs = append(errs, err)
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}

// killUserProcesses sends SIGKILL to every process whose real or effective
// UID is uid (read from /proc; races with exiting processes are harmless).
func killUserProcesses(uid int) {
	if uid <= 0 {
		return
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return
	}
	want := strconv.Itoa(uid)
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "status"))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 3 && f[0] == "Uid:" {
				if f[1] == want || f[2] == want {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
				break
			}
		}
	}
}
