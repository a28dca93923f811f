package main

import (
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aipress/aipress/bench/internal/benchplatform"
)

// firstPostID is the ID of the first generated post (clear of the ones
// WordPress's installer made).
const firstPostID = 1000

// words make the generated posts' text: prose compresses like prose.
var words = strings.Fields(`the a of and to in is was for on that with as by at from his her an which or
were are this be had have it not but been one their they all there when would who will more no if out so
said what up its about into than them can only other new some could time these two may then do first any
my now such like our over man me even most made after also did many before must through back years where
much your way well down should because each just those people how too little state good very make world
still own see men work long get here between both life being under never day same another know while last
might us great old year off come since against go came right used take three wordpress garden river
mountain coffee morning evening letter window garden kitchen story village market harbour station`)

// sentence returns n pseudo-random words from rng.
func sentence(rng *rand.Rand, n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(words[rng.IntN(len(words))])
	}
	return b.String()
}

// sqlQuote quotes s as a MariaDB string literal.
func sqlQuote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `''`).Replace(s) + "'"
}

// postsSQL is one INSERT of posts start..end-1 (IDs firstPostID+i): a title
// and a few paragraphs (≈ 2 KB) each, deterministic.
func postsSQL(start, end int) string {
	var b strings.Builder
	b.WriteString("INSERT INTO wp_posts (ID, post_author, post_date, post_date_gmt, post_modified, post_modified_gmt, post_title, post_name, post_content, post_excerpt, post_status, post_type, to_ping, pinged, post_content_filtered, guid) VALUES ")
	base := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := start; i < end; i++ {
		rng := rand.New(rand.NewPCG(uint64(i), 42))
		title := sentence(rng, 6)
		var content strings.Builder
		for p := 0; p < 4; p++ {
			content.WriteString("<!-- wp:paragraph -->\n<p>" + sentence(rng, 60) + "</p>\n<!-- /wp:paragraph -->\n")
		}
		date := base.Add(time.Duration(i) * time.Hour).Format("2006-01-02 15:04:05")
		if i > start {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "(%d, 1, '%s', '%s', '%s', '%s', %s, 'post-%d', %s, '', 'publish', 'post', '', '', '', 'http://bench-backup.localhost/?p=%d')",
			firstPostID+i, date, date, date, date, sqlQuote(title), i, sqlQuote(content.String()), firstPostID+i)
	}
	return b.String()
}

// postmetaSQL is one INSERT of three postmeta rows per post start..end-1.
func postmetaSQL(start, end int) string {
	var b strings.Builder
	b.WriteString("INSERT INTO wp_postmeta (post_id, meta_key, meta_value) VALUES ")
	for i := start; i < end; i++ {
		if i > start {
			b.WriteByte(',')
		}
		id := firstPostID + i
		fmt.Fprintf(&b, "(%d, '_edit_last', '1'), (%d, '_bench_views', '%d'), (%d, '_bench_layout', 'a:2:{s:5:\"width\";i:%d;s:4:\"side\";s:4:\"left\";}')",
			id, id, i*7%1000, id, 600+i%400)
	}
	return b.String()
}

// upload is one generated file: Size random bytes from Seed, or a copy of
// the file at index CopyOf (≥ 0).
type upload struct {
	Path   string
	Size   int64
	Seed   uint64
	CopyOf int
}

// planUploads plans files of 200 KiB to 2 MiB (like photos) in
// uploads/YYYY/MM/ until total bytes; every dupEvery-th file (when > 0) is a
// copy of an earlier one under another name.
func planUploads(total int64, dupEvery int) []upload {
	rng := rand.New(rand.NewPCG(7, 7))
	var out []upload
	var sum int64
	for i := 0; sum < total; i++ {
		dir := fmt.Sprintf("%d/%02d", 2020+i/120, 1+(i/10)%12)
		u := upload{Path: fmt.Sprintf("%s/photo-%04d.jpg", dir, i), CopyOf: -1, Seed: uint64(i)}
		if dupEvery > 0 && i > 0 && i%dupEvery == 0 {
			u.CopyOf = rng.IntN(i)
			for out[u.CopyOf].CopyOf >= 0 {
				u.CopyOf = out[u.CopyOf].CopyOf
			}
			u.Size = out[u.CopyOf].Size
		} else {
			u.Size = int64(200<<10 + rng.IntN(1848<<10))
		}
		if sum+u.Size > total && u.CopyOf < 0 {
			u.Size = max(total-sum, 1)
		}
		out = append(out, u)
		sum += u.Size
	}
	return out
}

// writeUploads writes the planned files below dir.
func writeUploads(dir string, plan []upload) error {
	for _, u := range plan {
		p := filepath.Join(dir, filepath.FromSlash(u.Path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		seed := u.Seed
		if u.CopyOf >= 0 {
			seed = plan[u.CopyOf].Seed
		}
		f, err := os.Create(p)
		if err != nil {
			return err
		}
		_, err = io.CopyN(f, randomReader{rand.New(rand.NewChaCha8(seedBytes(seed)))}, u.Size)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func seedBytes(n uint64) [32]byte {
	var s [32]byte
	for i := 0; i < 8; i++ {
		s[i] = byte(n >> (8 * i))
	}
	return s
}

type randomReader struct{ r *rand.Rand }

func (r randomReader) Read(p []byte) (int, error) {
	for i := 0; i+8 <= len(p); i += 8 {
		v := r.r.Uint64()
		for k := 0; k < 8; k++ {
			p[i+k] = byte(v >> (8 * k))
		}
	}
	for i := len(p) &^ 7; i < len(p); i++ {
		p[i] = byte(r.r.Uint32())
	}
	return len(p), nil
}

// Result is one tool's measurements.
type Result struct {
	Tool            string        `json:"tool"`
	First           time.Duration `json:"first_backup_ns"`
	Second          time.Duration `json:"second_backup_ns"`
	Restore         time.Duration `json:"restore_ns"`
	SizeAfterFirst  int64         `json:"repo_bytes_after_first"`
	SizeAfterSecond int64         `json:"repo_bytes_after_second"`
	Snapshot        string        `json:"snapshot,omitempty"`
}

// Report is the benchmark's outcome.
type Report struct {
	Posts       int     `json:"posts"`
	DumpBytes   int64   `json:"dump_bytes"`
	UploadBytes int64   `json:"upload_bytes"`
	Restic      *Result `json:"restic,omitempty"`
	AIPress     *Result `json:"aipress,omitempty"`
	// Load is the machine's load average (/proc/loadavg: 1, 5, 15
	// minutes) when the measurements started and ended: times measured on
	// a busy machine are noisy.
	LoadBefore string `json:"load_before,omitempty"`
	LoadAfter  string `json:"load_after,omitempty"`
}

// sizeTolerance: repository sizes within this fraction of restic's count
// as equal (a few bytes of headers either way are noise, not a verdict).
const sizeTolerance = 0.01

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

func secs(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

// Table lays the results out side by side.
func (r *Report) Table() benchplatform.Table {
	t := benchplatform.Table{{fmt.Sprintf("site: %d posts, dump %s, uploads %s", r.Posts, mib(r.DumpBytes), mib(r.UploadBytes)), "restic", "aipress"}}
	get := func(res *Result, f func(*Result) string) string {
		if res == nil {
			return "-"
		}
		return f(res)
	}
	rows := []struct {
		name string
		f    func(*Result) string
	}{
		{"first backup", func(x *Result) string { return secs(x.First) }},
		{"second backup (unchanged)", func(x *Result) string { return secs(x.Second) }},
		{"restore", func(x *Result) string { return secs(x.Restore) }},
		{"repository after first", func(x *Result) string { return mib(x.SizeAfterFirst) }},
		{"repository after second", func(x *Result) string { return mib(x.SizeAfterSecond) }},
		{"repository after second (bytes)", func(x *Result) string { return fmt.Sprint(x.SizeAfterSecond) }},
	}
	for _, row := range rows {
		t = append(t, []string{row.name, get(r.Restic, row.f), get(r.AIPress, row.f)})
	}
	return t
}

// loadAvg returns the 1, 5 and 15 minute load averages ("" if unknown).
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// Verdict compares AIPress with restic against the goal: at least restic's
// speed (each backup and the restore no slower) and no more than its size.
func (r *Report) Verdict() []string {
	out := []string{"goal: at least restic's speed and no more than its repository size"}
	if r.Restic == nil || r.AIPress == nil {
		return append(out, "not compared: restic was not measured")
	}
	a, b := r.AIPress, r.Restic
	cmp := func(name string, ours, theirs float64, unit string, tolerance float64) string {
		verdict := "met"
		switch {
		case ours <= theirs:
		case ours <= theirs*(1+tolerance):
			verdict = fmt.Sprintf("met (within %.0f%%)", 100*tolerance)
		default:
			verdict = "MISSED"
		}
		ratio := 0.0
		if theirs > 0 {
			ratio = ours / theirs
		}
		return fmt.Sprintf("%-26s aipress %.2f%s vs restic %.2f%s (%.3f×): %s", name+":", ours, unit, theirs, unit, ratio, verdict)
	}
	out = append(out,
		cmp("first backup", a.First.Seconds(), b.First.Seconds(), " s", 0),
		cmp("second backup", a.Second.Seconds(), b.Second.Seconds(), " s", 0),
		cmp("restore", a.Restore.Seconds(), b.Restore.Seconds(), " s", 0),
		cmp("repository size", float64(a.SizeAfterSecond)/(1<<20), float64(b.SizeAfterSecond)/(1<<20), " MiB", sizeTolerance),
		fmt.Sprintf("(sizes within %.0f%% of restic's count as equal; times have no tolerance)", 100*sizeTolerance),
	)
	if r.LoadBefore != "" {
		out = append(out, fmt.Sprintf("load average (1/5/15 min): %s at the start, %s at the end", r.LoadBefore, r.LoadAfter))
	}
	return out
}
