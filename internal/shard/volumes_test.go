package shard_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/shard"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/volume"
)

// needVolumes skips a test where this host cannot give sites volumes.
func needVolumes(t *testing.T) {
	t.Helper()
	needStack(t)
	if err := volume.Check(context.Background(), t.TempDir()); err != nil {
		t.Skipf("site volumes unavailable here: %v", err)
	}
}

// siteUser returns the uid and gid of site uid's Unix user on sh.
func siteUser(t *testing.T, sh *shard.Shard, uid string) (int, int) {
	t.Helper()
	u, err := user.Lookup(sh.NamesFor(uid).Unix)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return id, gid
}

// writeAs appends mib MiB to path as the given user, as the site's PHP
// would, and returns dd's error output ("" when all was written).
func writeAs(t *testing.T, uid, gid int, path string, mib int) string {
	t.Helper()
	cmd := exec.Command("dd", "if=/dev/urandom", "of="+path, "bs=1M", "count="+strconv.Itoa(mib), "conv=fsync,notrunc", "oflag=append", "status=none")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		if stderr.Len() == 0 {
			return err.Error()
		}
		return stderr.String()
	}
	return ""
}

const enospc = "No space left on device"

// setLimit sets site name's disk limit (a new generation) and converges
// shard.
func (c *cluster) setLimit(name, shardName string, mb int) *site.Site {
	c.t.Helper()
	if _, err := c.st.UpdateSite(c.ctx, name, func(s *site.Site) error { s.Spec.Limits.DiskMB = mb; return nil }); err != nil {
		c.t.Fatal(err)
	}
	if err := c.converge(shardName); err != nil {
		c.t.Fatalf("converge after setting %s's limit to %d MB: %v", name, mb, err)
	}
	return c.get(name)
}

// diskCond returns site name's DiskQuota condition.
func (c *cluster) diskCond(name string) site.Condition {
	c.t.Helper()
	cond := c.get(name).Status.Condition(shard.CondDiskQuota)
	if cond == nil {
		c.t.Fatalf("%s has no %s condition", name, shard.CondDiskQuota)
	}
	return *cond
}

// mountsUnder lists the mount points at or below dir.
func mountsUnder(t *testing.T, dir string) []string {
	t.Helper()
	ms, err := volume.Mounts()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range ms {
		if m.Point == dir || strings.HasPrefix(m.Point, dir+"/") {
			out = append(out, m.Point)
		}
	}
	return out
}

// mediaUpload uploads data as the admin through WordPress's REST API and
// returns the status and body.
func (c *cluster) mediaUpload(host, cookies, name string, data []byte) (int, string) {
	c.t.Helper()
	code, _, nonce := c.request("GET", host, "/wp-admin/admin-ajax.php?action=rest-nonce", nil, http.Header{"Cookie": {cookies}})
	if code != 200 || nonce == "" {
		c.t.Fatalf("rest-nonce = %d %q", code, nonce)
	}
	code, _, body := c.request("POST", host, "/wp-json/wp/v2/media", bytes.NewReader(data), http.Header{
		"Cookie": {cookies}, "X-Wp-Nonce": {nonce}, "Content-Type": {"image/png"},
		"Content-Disposition": {`attachment; filename="` + name + `"`},
	})
	return code, body
}

// png returns a small valid PNG followed by n random bytes (WordPress checks
// the type; the tail sets the size).
func png(t *testing.T, n int) []byte {
	t.Helper()
	b := []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89" +
		"\x00\x00\x00\rIDATx\x9cc\xf8\xff\xff?\x00\x05\xfe\x02\xfe\xa75\x81\x84\x00\x00\x00\x00IEND\xaeB`\x82")
	tail := make([]byte, n)
	f, err := os.Open("/dev/urandom")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Read(tail); err != nil {
		t.Fatal(err)
	}
	return append(b, tail...)
}

// TestSiteVolumeLimitsWrites: a site's PHP (its Unix user) cannot write
// beyond its disk limit in uploads, tmp or logs, while another site on the
// shard still can; the full site keeps serving, WordPress refuses an upload
// that does not fit with a clear message, and raising the limit lets writes
// through again without a restart, lowering it below what is used holds
// the site where it is.
func TestSiteVolumeLimitsWrites(t *testing.T) {
	needVolumes(t)
	c := newCluster(t)
	sh := c.start("local")
	t.Cleanup(c.deleteAll)
	c.create("full.localhost", "uid-full", "local", "Full Site", adminFor(t))
	c.create("other.localhost", "uid-other", "local", "Other Site", adminFor(t))
	c.setLimit("full.localhost", "local", 24)
	c.setLimit("other.localhost", "local", 64)
	n := sh.NamesFor("uid-full")
	uid, gid := siteUser(t, sh, "uid-full")
	ouid, ogid := siteUser(t, sh, "uid-other")
	uploads := filepath.Join(n.Docroot, "wp-content", "uploads")

	// The layout: the trees are mounts; the image is root's and sparse.
	got := strings.Join(mountsUnder(t, n.Dir), "\n")
	for _, want := range []string{filepath.Join(n.Dir, "volume"), uploads, filepath.Join(n.Dir, "tmp"), filepath.Join(n.Dir, "logs")} {
		if !strings.Contains(got+"\n", want+"\n") {
			t.Errorf("%s is not a mount point; mounts below the site: %s", want, got)
		}
	}
	img, err := os.Stat(filepath.Join(n.Dir, "disk.img"))
	if err != nil {
		t.Fatal(err)
	}
	if st := img.Sys().(*syscall.Stat_t); img.Mode().Perm() != 0o600 || st.Uid != 0 || st.Blocks*512 > 8<<20 {
		t.Errorf("disk.img: mode %v uid %d, %d bytes allocated; want 0600 root, sparse", img.Mode().Perm(), st.Uid, st.Blocks*512)
	}
	if cfg, _ := os.ReadFile(filepath.Join(n.Docroot, "wp-config.php")); !strings.Contains(string(cfg), "define('AIPRESS_DISK_LIMIT_MB', 24);") {
		t.Error("wp-config.php lacks AIPRESS_DISK_LIMIT_MB 24")
	}
	if cond := c.diskCond("full.localhost"); cond.Status != "True" || !strings.Contains(cond.Message, "of 24 MB used") {
		t.Errorf("DiskQuota = %+v, want True … of 24 MB used", cond)
	}

	// An upload that fits goes through WordPress (so the refusals below
	// are the limit's, not a broken upload).
	cookies := c.login("full.localhost")
	if code, body := c.mediaUpload("full.localhost", cookies, "fits.png", png(t, 100<<10)); code != 201 {
		t.Fatalf("uploading 100 KiB = %d: %.400s", code, body)
	}
	// One that does not fit is refused, saying why.
	if code, body := c.mediaUpload("full.localhost", cookies, "big.png", png(t, 30<<20)); code < 400 || !strings.Contains(body, "storage is full") || !strings.Contains(body, "of 24 MB used") {
		t.Errorf("uploading 30 MiB into a 24 MB site = %d: %.600s; want a refusal naming the limit", code, body)
	}

	// The site's user fills uploads; the kernel stops it at the limit.
	if out := writeAs(t, uid, gid, filepath.Join(uploads, "filler"), 40); !strings.Contains(out, enospc) {
		t.Fatalf("writing 40 MiB into a 24 MB site's uploads: %q, want ENOSPC", out)
	}
	for _, p := range []string{filepath.Join(n.Dir, "tmp", "x"), filepath.Join(n.Dir, "logs", "x")} {
		if out := writeAs(t, uid, gid, p, 1); !strings.Contains(out, enospc) {
			t.Errorf("writing to %s of a full site: %q, want ENOSPC", p, out)
		}
	}
	on := sh.NamesFor("uid-other")
	if out := writeAs(t, ouid, ogid, filepath.Join(on.Docroot, "wp-content", "uploads", "mine"), 8); out != "" {
		t.Errorf("another site cannot write while one is full: %s", out)
	}
	if code, _, body := c.request("GET", "full.localhost", "/", nil, nil); code != 200 || !strings.Contains(body, "Full Site") {
		t.Errorf("the full site does not serve: GET / = %d", code)
	}
	if err := c.converge("local"); err != nil {
		t.Fatal(err)
	}
	if cond := c.diskCond("full.localhost"); cond.Status != "False" || cond.Reason != "Full" || !strings.Contains(cond.Message, "of 24 MB used") {
		t.Errorf("DiskQuota of the full site = %+v, want False Full", cond)
	}
	if code, body := c.mediaUpload("full.localhost", cookies, "more.png", png(t, 1<<20)); code < 400 || !strings.Contains(body, "This site&#039;s storage is full") && !strings.Contains(body, "This site's storage is full") {
		t.Errorf("uploading into a full site = %d: %.600s; want the storage-full message", code, body)
	}

	// Raised: the site writes again, no restart (the image is grown, or
	// rebuilt where the kernel will not resize it online).
	before := mustSize(t, filepath.Join(uploads, "filler"))
	c.setLimit("full.localhost", "local", 64)
	if out := writeAs(t, uid, gid, filepath.Join(uploads, "filler"), 16); out != "" {
		t.Errorf("after raising the limit to 64 MB: %s", out)
	}
	if after := mustSize(t, filepath.Join(uploads, "filler")); after != before+16<<20 {
		t.Errorf("filler is %d bytes, want %d (kept, plus 16 MiB)", after, before+16<<20)
	}
	if cond := c.diskCond("full.localhost"); cond.Status != "True" || !strings.Contains(cond.Message, "of 64 MB used") {
		t.Errorf("DiskQuota after raising = %+v", cond)
	}
	if cfg, _ := os.ReadFile(filepath.Join(n.Docroot, "wp-config.php")); !strings.Contains(string(cfg), "define('AIPRESS_DISK_LIMIT_MB', 64);") {
		t.Error("wp-config.php does not carry the raised limit")
	}

	// Lowered below what it uses: nothing is lost, nothing more is stored.
	c.setLimit("full.localhost", "local", 16)
	if out := writeAs(t, uid, gid, filepath.Join(uploads, "filler"), 1); !strings.Contains(out, enospc) {
		t.Errorf("over a lowered limit: %q, want ENOSPC", out)
	}
	if size := mustSize(t, filepath.Join(uploads, "filler")); size < before+16<<20 {
		t.Errorf("lowering the limit lost data: filler %d bytes", size)
	}
	if cond := c.diskCond("full.localhost"); cond.Status != "False" || cond.Reason != "OverLimit" {
		t.Errorf("DiskQuota over the limit = %+v, want False OverLimit", cond)
	}
	if code, _, body := c.request("GET", "full.localhost", "/", nil, nil); code != 200 || !strings.Contains(body, "Full Site") {
		t.Errorf("the site over its limit does not serve: GET / = %d", code)
	}
}

func mustSize(t *testing.T, p string) int64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// TestSiteVolumeRestartAndRepair: a restarted shard mounts its sites'
// volumes again (a stopped one leaves none mounted), and a volume whose
// making a crash interrupted is made again.
func TestSiteVolumeRestartAndRepair(t *testing.T) {
	needVolumes(t)
	c := newCluster(t)
	sh := c.start("local")
	t.Cleanup(c.deleteAll)
	c.create("kept.localhost", "uid-kept", "local", "Kept", adminFor(t))
	c.create("new.localhost", "uid-new", "local", "New", adminFor(t))
	n, nn := sh.NamesFor("uid-kept"), sh.NamesFor("uid-new")
	uid, gid := siteUser(t, sh, "uid-kept")
	upload := filepath.Join(n.Docroot, "wp-content", "uploads", "2024", "kept.txt")
	if err := os.MkdirAll(filepath.Dir(upload), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(upload, []byte("kept across restarts"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(upload, uid, gid); err != nil {
		t.Fatal(err)
	}

	c.stop("local")
	if m := mountsUnder(t, filepath.Dir(n.Dir)); len(m) != 0 {
		t.Fatalf("a stopped shard left mounts: %v", m)
	}
	// Beneath the mounts the trees are root's: while the volume is not
	// mounted the site cannot write there.
	if fi, err := os.Stat(filepath.Join(n.Docroot, "wp-content", "uploads")); err != nil || fi.Sys().(*syscall.Stat_t).Uid != 0 {
		t.Errorf("uploads beneath the mount: %v %v, want root's", fi, err)
	}
	if out := writeAs(t, uid, gid, filepath.Join(n.Docroot, "wp-content", "uploads", "escape"), 1); out == "" {
		t.Error("the site wrote to the host disk while its volume was not mounted")
	}
	// A crash while the new site's volume was being made: a half-written
	// image under the temporary name, and none under the real one.
	for _, p := range []string{filepath.Join(nn.Dir, "disk.img")} {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(nn.Dir, "disk.img.new"), []byte("half an image"), 0o600); err != nil {
		t.Fatal(err)
	}

	sh = c.start("local")
	if err := c.converge("local"); err != nil {
		t.Fatal(err)
	}
	c.routes()
	if b, err := os.ReadFile(upload); err != nil || string(b) != "kept across restarts" {
		t.Errorf("after a restart the upload reads %q, %v", b, err)
	}
	if code, _, body := c.request("GET", "kept.localhost", "/wp-content/uploads/2024/kept.txt", nil, nil); code != 200 || body != "kept across restarts" {
		t.Errorf("GET the upload after a restart = %d %q", code, body)
	}
	if _, err := os.Stat(filepath.Join(nn.Dir, "disk.img.new")); !os.IsNotExist(err) {
		t.Errorf("the half-made image is still there: %v", err)
	}
	for _, name := range []string{"kept.localhost", "new.localhost"} {
		if s := c.get(name); s.Status.Phase != site.PhaseReady {
			t.Errorf("%s is %s after the restart", name, s.Status.Phase)
		}
		if cond := c.diskCond(name); cond.Status != "True" {
			t.Errorf("%s: DiskQuota = %+v", name, cond)
		}
		if code, _, _ := c.request("GET", name, "/", nil, nil); code != 200 {
			t.Errorf("GET %s/ = %d after the restart", name, code)
		}
	}
	nuid, ngid := siteUser(t, sh, "uid-new")
	if out := writeAs(t, nuid, ngid, filepath.Join(nn.Dir, "tmp", "x"), 1); out != "" {
		t.Errorf("the repaired site cannot write its tmp: %s", out)
	}
}

// TestSiteVolumeMigration: sites from a shard without volumes keep every
// file when the shard gives them volumes.
func TestSiteVolumeMigration(t *testing.T) {
	needVolumes(t)
	c := newCluster(t)
	c.volumes = shard.VolumesOff
	sh := c.start("local")
	t.Cleanup(c.deleteAll)
	c.create("old.localhost", "uid-old", "local", "Old Site", adminFor(t))
	n := sh.NamesFor("uid-old")
	if m := mountsUnder(t, n.Dir); len(m) != 0 {
		t.Fatalf("volumes off, yet mounts: %v", m)
	}
	if cond := c.diskCond("old.localhost"); cond.Status != "Unknown" || cond.Reason != "NotEnforced" {
		t.Errorf("DiskQuota without volumes = %+v, want Unknown NotEnforced", cond)
	}
	uid, gid := siteUser(t, sh, "uid-old")
	uploads := filepath.Join(n.Docroot, "wp-content", "uploads")
	files := map[string]string{
		filepath.Join(uploads, "2023", "01", "photo.jpg"):         "photo",
		filepath.Join(uploads, "2023", "01", "photo-150x150.jpg"): "thumb",
		filepath.Join(uploads, "big.bin"):                         strings.Repeat("b", 3<<20),
		filepath.Join(n.Dir, "tmp", "sess_abc"):                   "session",
		filepath.Join(n.Dir, "logs", "php-error.log"):             "an error\n",
	}
	mtime := time.Date(2023, 1, 2, 3, 4, 5, 0, time.UTC)
	for p, data := range files {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o640); err != nil {
			t.Fatal(err)
		}
		for d := filepath.Dir(p); d != n.Dir && d != filepath.Join(n.Docroot, "wp-content"); d = filepath.Dir(d) {
			_ = os.Chown(d, uid, gid)
		}
		if err := os.Chown(p, uid, gid); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("2023/01/photo.jpg", filepath.Join(uploads, "latest.jpg")); err != nil {
		t.Fatal(err)
	}

	if _, err := c.st.UpdateSite(c.ctx, "old.localhost", func(s *site.Site) error { s.Spec.Limits.DiskMB = 32; return nil }); err != nil {
		t.Fatal(err)
	}
	c.stop("local")
	c.volumes = ""
	sh = c.start("local")
	if err := c.converge("local"); err != nil {
		t.Fatal(err)
	}
	c.routes()
	got := strings.Join(mountsUnder(t, n.Dir), "\n") + "\n"
	if !strings.Contains(got, uploads+"\n") || !strings.Contains(got, filepath.Join(n.Dir, "tmp")+"\n") {
		t.Fatalf("after migration the trees are not mounts: %s", got)
	}
	for p, data := range files {
		b, err := os.ReadFile(p)
		fi, _ := os.Stat(p)
		if err != nil || string(b) != data {
			t.Errorf("%s after migration: %d bytes, %v", p, len(b), err)
			continue
		}
		if st := fi.Sys().(*syscall.Stat_t); int(st.Uid) != uid || fi.Mode().Perm() != 0o640 || !fi.ModTime().Equal(mtime) {
			t.Errorf("%s after migration: uid %d mode %v mtime %v", p, st.Uid, fi.Mode().Perm(), fi.ModTime())
		}
	}
	if l, err := os.Readlink(filepath.Join(uploads, "latest.jpg")); err != nil || l != "2023/01/photo.jpg" {
		t.Errorf("symlink after migration: %q %v", l, err)
	}
	if _, err := os.Stat(filepath.Join(n.Dir, "premigrate")); !os.IsNotExist(err) {
		t.Errorf("the migrated files' old copy remains: %v", err)
	}
	if code, _, body := c.request("GET", "old.localhost", "/wp-content/uploads/2023/01/photo.jpg", nil, nil); code != 200 || body != "photo" {
		t.Errorf("GET a migrated upload = %d %q", code, body)
	}
	if cond := c.diskCond("old.localhost"); cond.Status != "True" {
		t.Errorf("DiskQuota after migration = %+v", cond)
	}
	if out := writeAs(t, uid, gid, filepath.Join(uploads, "filler"), 40); !strings.Contains(out, enospc) {
		t.Errorf("after migration the limit does not hold: %q", out)
	}
}

// TestSiteVolumeTeardown: deleting a site while a file on its volume is
// open, and collecting an orphaned site, leave no mount, image or loop
// device behind.
func TestSiteVolumeTeardown(t *testing.T) {
	needVolumes(t)
	c := newCluster(t)
	sh := c.start("local")
	t.Cleanup(c.deleteAll)
	c.create("busy.localhost", "uid-busy", "local", "Busy", adminFor(t))
	c.create("orphan.localhost", "uid-orphan", "local", "Orphan", adminFor(t))
	n, on := sh.NamesFor("uid-busy"), sh.NamesFor("uid-orphan")
	devs := map[string]string{}
	for _, nm := range []shard.Names{n, on} {
		ms, _ := volume.Mounts()
		for _, m := range ms {
			if m.Point == filepath.Join(nm.Dir, "volume") {
				devs[nm.Dir] = m.Source
			}
		}
		if devs[nm.Dir] == "" {
			t.Fatalf("%s has no volume", nm.Dir)
		}
	}
	// A request still writing when the site goes.
	f, err := os.Create(filepath.Join(n.Docroot, "wp-content", "uploads", "writing"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := c.st.UpdateSite(c.ctx, "busy.localhost", func(s *site.Site) error {
		now := time.Now().UTC()
		s.Metadata.DeletionRequested = &now
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// The orphan: the control plane forgot it, the shard did not.
	if err := c.st.DeleteSite(c.ctx, "orphan.localhost"); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := c.converge("local"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.src.get(c.ctx, "busy.localhost"); err == nil {
		t.Error("the busy site was not finalized")
	}
	for _, nm := range []shard.Names{n, on} {
		if m := mountsUnder(t, nm.Dir); len(m) != 0 {
			t.Errorf("%s: mounts remain: %v", nm.Dir, m)
		}
		if _, err := os.Stat(nm.Dir); !os.IsNotExist(err) {
			t.Errorf("%s remains: %v", nm.Dir, err)
		}
	}
	if _, err := f.Write([]byte("the writer goes on")); err != nil {
		t.Errorf("the writer's file broke: %v", err)
	}
	f.Close()
	for dir, dev := range devs {
		b, err := os.ReadFile("/sys/block/" + filepath.Base(dev) + "/loop/backing_file")
		if err == nil && strings.Contains(string(b), dir) {
			t.Errorf("%s still holds %s", dev, strings.TrimSpace(string(b)))
		}
	}
}

// TestSiteVolumeRestoreInPlace: an in-place restore stages the snapshot's
// uploads on the site's volume and swaps them in; one a crash interrupted
// after it was committed is finished after a reboot (the volume not
// mounted, the binds gone), and either way the uploads end up on the
// volume with no staging left.
func TestSiteVolumeRestoreInPlace(t *testing.T) {
	needVolumes(t)
	c := newCluster(t)
	sh := c.start("local")
	t.Cleanup(c.deleteAll)
	const host, id = "restore.localhost", "uid-restore"
	c.create(host, id, "local", "Restore", adminFor(t))
	n := sh.NamesFor(id)
	uid, gid := siteUser(t, sh, id)
	uploads := filepath.Join(n.Docroot, "wp-content", "uploads")
	put := func(name, data string) {
		t.Helper()
		p := filepath.Join(uploads, name)
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	put("kept.txt", "in the snapshot")
	snap, err := sh.BackupSite(c.ctx, c.get(host), "manual", nil)
	if err != nil {
		t.Fatal(err)
	}
	onVolume := func(when string) {
		t.Helper()
		ms, err := volume.Mounts()
		if err != nil {
			t.Fatal(err)
		}
		if !volume.Bound(ms, filepath.Join(n.Dir, "volume", "uploads"), uploads) {
			t.Errorf("%s: uploads is not the volume's; mounts: %v", when, mountsUnder(t, n.Dir))
		}
		for _, p := range []string{"volume/uploads.restore", "volume/uploads.old", "htdocs.old", "htdocs.restore"} {
			if _, err := os.Stat(filepath.Join(n.Dir, p)); err == nil {
				t.Errorf("%s: %s remains", when, p)
			}
		}
		if m := mountsUnder(t, n.Dir); len(m) != 4 {
			t.Errorf("%s: %d mounts below the site, want 4 (volume, uploads, tmp, logs): %v", when, len(m), m)
		}
		c.check(host, "/wp-content/uploads/kept.txt", 200, "in the snapshot")
		if code, _, _ := c.request("GET", host, "/wp-content/uploads/later.txt", nil, nil); code != 404 {
			t.Errorf("%s: a file from after the snapshot is still served (%d)", when, code)
		}
	}

	// Plain.
	if err := os.Remove(filepath.Join(uploads, "kept.txt")); err != nil {
		t.Fatal(err)
	}
	put("later.txt", "after the snapshot")
	if err := sh.RestoreInPlace(c.ctx, c.src, c.get(host), snap.Snapshot, nil); err != nil {
		t.Fatal(err)
	}
	c.routes()
	onVolume("after a restore")

	// Killed once committed, then the host reboots.
	put("later.txt", "after the snapshot")
	crash := errors.New("killed")
	ctx, cancel := context.WithCancel(c.ctx)
	shard.SetCrashAt(sh, func(p string) error {
		if p == "swapping" {
			cancel()
			return crash
		}
		return nil
	})
	if err := sh.RestoreInPlace(ctx, c.src, c.get(host), snap.Snapshot, nil); !errors.Is(err, crash) {
		t.Fatalf("restore: %v", err)
	}
	c.stop("local")
	if m := mountsUnder(t, n.Dir); len(m) != 0 {
		t.Fatalf("mounts survive the stop: %v", m)
	}
	c.start("local")
	for i := 0; i < 50 && maintenance(c.get(host)); i++ {
		if err := c.converge("local"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := c.converge("local"); err != nil {
		t.Fatal(err)
	}
	c.routes()
	if s := c.get(host); maintenance(s) || s.Status.Phase != site.PhaseReady {
		t.Fatalf("after recovery: %s %+v", s.Status.Phase, s.Status.Conditions)
	}
	onVolume("after a restore finished after a reboot")
}
