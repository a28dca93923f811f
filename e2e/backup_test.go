package e2e

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/shard"
)

// jobJSON is what `-o json` prints of a job.
type jobJSON struct {
	ID     string          `json:"id"`
	Kind   string          `json:"kind"`
	Phase  string          `json:"phase"`
	Error  string          `json:"error"`
	Result json.RawMessage `json:"result"`
	Site   string          `json:"site"`
}

func parseJob(t *testing.T, out string) jobJSON {
	t.Helper()
	var j jobJSON
	if err := json.Unmarshal([]byte(out), &j); err != nil || j.ID == "" {
		t.Fatalf("job output: %v\n%s", err, out)
	}
	return j
}

type backupResult struct {
	Snapshot   string `json:"snapshot"`
	TotalBytes int64  `json:"total_bytes"`
	NewBytes   int64  `json:"new_bytes"`
}

func (p *platform) backup(domain string) backupResult {
	p.t.Helper()
	out, err := p.cli("backup", "create", "--site", domain, "--wait", "-o", "json")
	if err != nil {
		p.t.Fatalf("backup create: %v\n%s", err, out)
	}
	j := parseJob(p.t, out)
	var r backupResult
	if err := json.Unmarshal(j.Result, &r); err != nil || j.Phase != "Succeeded" || r.Snapshot == "" {
		p.t.Fatalf("backup job: %v\n%s", err, out)
	}
	return r
}

// waitJobPhase polls `job get` until the job reaches one of phases.
func (p *platform) waitJobPhase(id string, d time.Duration, phases ...string) jobJSON {
	p.t.Helper()
	deadline := time.Now().Add(d)
	for {
		out, err := p.cli("job", "get", id, "-o", "json")
		if err == nil {
			if j := parseJob(p.t, out); slices.Contains(phases, j.Phase) {
				return j
			}
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("job %s not %v after %v: %v\n%s", id, phases, d, err, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// publish publishes a post and uploads an image as the site's admin and
// returns the post's ID and the image's URL path.
func publish(t *testing.T, p *platform, domain string, c created, title string, image []byte) (int, string) {
	t.Helper()
	admin := login(t, p, domain, c)
	code, nonce := admin.get("/wp-admin/admin-ajax.php?action=rest-nonce")
	if code != 200 {
		t.Fatalf("rest-nonce = %d", code)
	}
	code, body := admin.doJSON("POST", "/wp-json/wp/v2/posts", nonce, map[string]any{"title": title, "content": "Kept safe.", "status": "publish"})
	var post struct {
		ID int `json:"id"`
	}
	if err := json.Unmarshal([]byte(body), &post); code != 201 || err != nil {
		t.Fatalf("publish = %d %v %.300s", code, err, body)
	}
	code, _, body = admin.doRaw("POST", "/wp-json/wp/v2/media", http.Header{
		"Content-Type": {"image/png"}, "Content-Disposition": {`attachment; filename="kept.png"`}, "X-Wp-Nonce": {nonce},
	}, image)
	var media struct {
		ID        int    `json:"id"`
		SourceURL string `json:"source_url"`
	}
	if err := json.Unmarshal([]byte(body), &media); code != 201 || err != nil || media.SourceURL == "" {
		t.Fatalf("upload = %d %v %.300s", code, err, body)
	}
	i := strings.Index(media.SourceURL, "/wp-content/")
	return post.ID, media.SourceURL[i:]
}

// pngWith returns a small valid PNG with payload appended (WordPress checks
// the image type; trailing bytes make each image unique).
func pngWith(payload []byte) []byte {
	png := []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89" +
		"\x00\x00\x00\rIDATx\x9cc\xf8\xff\xff?\x00\x05\xfe\x02\xfe\xa75\x81\x84\x00\x00\x00\x00IEND\xaeB`\x82")
	return append(png, payload...)
}

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestBackups backs a site up and restores it in place, clones it onto
// another domain with its URLs rewritten, finds a corrupted chunk, and
// survives kill -9 during a backup and during a restore.
func TestBackups(t *testing.T) {
	p := newPlatform(t)
	p.start()
	const domain = "kept.localhost"
	c := p.createSite(domain, "Kept Site")
	vis := p.client(domain)
	title := fmt.Sprintf("Worth keeping %d", time.Now().UnixNano())
	postID, imagePath := publish(t, p, domain, c, title, pngWith(randomBytes(t, 256<<10)))
	image := vis.waitStatus(imagePath, 200, 10*time.Second)

	// A serialised option holding the site's URL, as widgets are stored.
	siteURL := strings.TrimSuffix(c.URL, "/")
	widget := fmt.Sprintf(`a:2:{i:2;a:2:{s:5:"title";s:4:"Link";s:4:"text";s:%d:"<a href="%s/about/">About</a>";}s:12:"_multiwidget";i:1;}`,
		len(`<a href="`+siteURL+`/about/">About</a>`), siteURL)
	db := p.rootDB()
	dbName := shard.NamePrefix(platformShard) + shard.SiteID(field(p.siteJSON(domain), "metadata", "uid"))
	if _, err := db.Exec("INSERT INTO `"+dbName+"`.wp_options (option_name, option_value, autoload) VALUES ('widget_text', ?, 'yes') ON DUPLICATE KEY UPDATE option_value = VALUES(option_value)", widget); err != nil {
		t.Fatal(err)
	}

	var stored string
	if err := db.QueryRow("SELECT option_value FROM `" + dbName + "`.wp_options WHERE option_name = 'widget_text'").Scan(&stored); err != nil || stored != widget {
		t.Fatalf("widget_text in %s = %q, %v", dbName, stored, err)
	}
	first := p.backup(domain)
	second := p.backup(domain)
	t.Logf("backups: first %d bytes (%d new), second %d new", first.TotalBytes, first.NewBytes, second.NewBytes)
	if second.NewBytes*20 > second.TotalBytes {
		t.Errorf("a backup of an unchanged site added %d of %d bytes", second.NewBytes, second.TotalBytes)
	}

	// Delete the post and the image, then restore in place: both are back.
	admin := login(t, p, domain, c)
	_, nonce := admin.get("/wp-admin/admin-ajax.php?action=rest-nonce")
	if code, body := admin.doJSON("DELETE", fmt.Sprintf("/wp-json/wp/v2/posts/%d?force=true", postID), nonce, nil); code != 200 {
		t.Fatalf("delete post = %d %.200s", code, body)
	}
	if err := os.Remove(filepath.Join(p.docroot(domain), filepath.FromSlash(strings.TrimPrefix(imagePath, "/")))); err != nil {
		t.Fatal(err)
	}
	p.cli("site", "purge", domain)
	if code, _ := vis.get(fmt.Sprintf("/?p=%d", postID)); code != 404 {
		t.Fatalf("deleted post answers %d", code)
	}
	if out, err := p.cli("backup", "restore", second.Snapshot, "--in-place", "--wait", "-o", "json"); err != nil || parseJob(t, out).Phase != "Succeeded" {
		t.Fatalf("restore in place: %v\n%s", err, out)
	}
	p.cli("site", "purge", domain)
	vis.waitStatus(fmt.Sprintf("/?p=%d", postID), 301, 30*time.Second) // to the post's permalink
	if code, body := vis.get("/"); code != 200 || !strings.Contains(body, title) {
		t.Fatalf("front page after the restore (%d) lacks %q", code, title)
	}
	if code, body := vis.get(imagePath); code != 200 || body != image {
		t.Fatalf("image after the restore: %d, %d bytes (want %d)", code, len(body), len(image))
	}

	// Clone onto another domain: it serves, with its own URLs everywhere.
	out, err := p.cli("backup", "restore", second.Snapshot, "--to-domain", "copy.localhost", "--wait", "-o", "json")
	if err != nil {
		t.Fatalf("clone: %v\n%s", err, out)
	}
	clone := p.client("copy.localhost")
	body := clone.waitStatus("/", 200, 60*time.Second)
	if !strings.Contains(body, title) || !strings.Contains(body, "copy.localhost") || strings.Contains(body, domain) {
		t.Errorf("clone's front page: title %v, own links %v, original's links %v",
			strings.Contains(body, title), strings.Contains(body, "copy.localhost"), strings.Contains(body, domain))
	}
	cloneDB := shard.NamePrefix(platformShard) + shard.SiteID(field(p.siteJSON("copy.localhost"), "metadata", "uid"))
	var home, cloned string
	if err := db.QueryRow("SELECT option_value FROM `" + cloneDB + "`.wp_options WHERE option_name = 'home'").Scan(&home); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow("SELECT option_value FROM `" + cloneDB + "`.wp_options WHERE option_name = 'widget_text'").Scan(&cloned); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(home, "copy.localhost") {
		t.Errorf("clone's home option = %q", home)
	}
	if strings.Contains(cloned, domain) || !phpUnserializes(t, cloned, "copy.localhost") {
		t.Errorf("clone's serialised widget is not rewritten validly: %s", cloned)
	}

	// A bigger site, so that a backup and a restore take long enough to be
	// interrupted.
	big := filepath.Join(p.docroot(domain), "wp-content", "uploads", "big.bin")
	if err := os.WriteFile(big, randomBytes(t, 48<<20), 0o644); err != nil {
		t.Fatal(err)
	}

	// kill -9 during a backup: the job ends with a clear status (run again
	// to success, or failed with a reason) and a new backup succeeds.
	out, err = p.cli("backup", "create", "--site", domain, "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	j := parseJob(t, out)
	p.waitJobProgress(j.ID, 60*time.Second)
	p.kill9()
	p.start()
	j = p.waitJobPhase(j.ID, 120*time.Second, "Succeeded", "Failed")
	t.Logf("backup interrupted by kill -9: %s %s", j.Phase, j.Error)
	if j.Phase == "Failed" && j.Error == "" {
		t.Error("a failed backup job gives no reason")
	}
	withBig := p.backup(domain)

	// kill -9 during an in-place restore: the site comes back serving
	// (restored or as it was), the job says what happened, a retry works.
	out, err = p.cli("backup", "restore", withBig.Snapshot, "--in-place", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	j = parseJob(t, out)
	p.waitJobProgress(j.ID, 60*time.Second)
	p.kill9()
	p.start()
	j = p.waitJobPhase(j.ID, 120*time.Second, "Succeeded", "Failed")
	t.Logf("restore interrupted by kill -9: %s %s", j.Phase, j.Error)
	if j.Phase == "Failed" && j.Error == "" {
		t.Error("a failed restore job gives no reason")
	}
	vis.waitStatus("/", 200, 60*time.Second)
	if out, err := p.cli("backup", "restore", withBig.Snapshot, "--in-place", "--wait", "-o", "json"); err != nil || parseJob(t, out).Phase != "Succeeded" {
		t.Fatalf("restore after the interrupted one: %v\n%s", err, out)
	}
	p.cli("site", "purge", domain)
	if code, body := vis.get("/"); code != 200 || !strings.Contains(body, title) {
		t.Fatalf("front page after the retried restore: %d", code)
	}
	if code, body := vis.get(imagePath); code != 200 || body != image {
		t.Fatalf("image after the retried restore: %d", code)
	}

	// Corrupt the data only the newest snapshot holds: verify names exactly
	// that snapshot. (The clone's first backup, which its schedule starts at
	// once, must be done first: its packs are not the newest snapshot's.)
	p.waitNoActiveJobs(90 * time.Second)
	repoDir := filepath.Join(p.dataDir, "backups", platformShard, "data")
	before := packs(t, repoDir)
	// Make the next backup carry new data: a fresh upload.
	_, _ = publish(t, p, domain, c, "Fresh "+title, pngWith(randomBytes(t, 512<<10)))
	third := p.backup(domain)
	added := slices.DeleteFunc(packs(t, repoDir), func(f string) bool { return slices.Contains(before, f) })
	if len(added) == 0 {
		t.Fatal("the third backup wrote no pack")
	}
	for _, f := range added {
		corrupt(t, f)
	}
	out, err = p.cli("backup", "verify", "--full", "--wait", "-o", "json")
	if err == nil {
		t.Errorf("verify of a corrupted repository succeeded:\n%s", out)
	}
	var vr struct {
		Result struct {
			Damaged []struct {
				Ref string `json:"ref"`
			} `json:"damaged"`
		} `json:"result"`
	}
	// On failure the CLI prints the job as JSON, then its error.
	if jerr := json.NewDecoder(strings.NewReader(out)).Decode(&vr); jerr != nil || len(vr.Result.Damaged) != 1 || vr.Result.Damaged[0].Ref != third.Snapshot {
		t.Errorf("verify reports %+v, want exactly %s\n%s", vr.Result.Damaged, third.Snapshot, out)
	}

}

// waitJobProgress waits until the job runs and has reported some progress.
func (p *platform) waitJobProgress(id string, d time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(d)
	for {
		out, err := p.cli("job", "get", id, "-o", "json")
		var j struct {
			Phase    string `json:"phase"`
			Progress struct {
				Done int64 `json:"done"`
			} `json:"progress"`
		}
		if err == nil && json.Unmarshal([]byte(out), &j) == nil && (j.Phase == "Running" && j.Progress.Done > 0 || j.Phase == "Succeeded" || j.Phase == "Failed") {
			if j.Phase != "Running" {
				p.t.Logf("job %s was already %s when the test meant to interrupt it", id, j.Phase)
			}
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("job %s made no progress in %v: %v\n%s", id, d, err, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitNoActiveJobs waits until no job is Pending or Running.
func (p *platform) waitNoActiveJobs(d time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(d)
	for {
		out, err := p.cli("job", "list", "--phase", "Pending,Running", "-o", "json")
		var list struct {
			Items []jobJSON `json:"items"`
		}
		if err == nil && json.Unmarshal([]byte(out), &list) == nil && len(list.Items) == 0 {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("jobs still active after %v: %v\n%s", d, err, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// platformShard is the shard `aipress up` runs first.
const platformShard = "local"

// packs lists the pack files of a file:// repository.
func packs(t *testing.T, dataDir string) []string {
	t.Helper()
	var out []string
	_ = filepath.WalkDir(dataDir, func(path string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && !strings.HasSuffix(path, ".attrs") {
			out = append(out, path)
		}
		return nil
	})
	slices.Sort(out)
	return out
}

// corrupt flips a byte in the middle of a file.
func corrupt(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil || len(b) == 0 {
		t.Fatalf("read %s: %v", path, err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	t.Logf("corrupted %s (now %x…)", filepath.Base(path), sum[:4])
}

// phpUnserializes reports whether PHP accepts s and its result mentions want.
func phpUnserializes(t *testing.T, s, want string) bool {
	t.Helper()
	cmd := exec.Command("php8.2", "-r", `$v = @unserialize(stream_get_contents(STDIN)); if ($v === false) exit(1); echo json_encode($v);`)
	cmd.Stdin = strings.NewReader(s)
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := cmd.Run(); err != nil {
		return false
	}
	return strings.Contains(out.String(), want)
}
