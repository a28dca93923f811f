package shard_test

import (
	"encoding/xml"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/aipress/aipress/internal/shard"
)

// sharedWXR returns the WXR files of ../shared/testdata/wordpress (next
// to the repository), skipping the test when they are absent.
func sharedWXR(t *testing.T) []string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for !fileExists(filepath.Join(dir, "go.mod")) {
		if filepath.Dir(dir) == dir {
			t.Skip("no go.mod above the test's directory")
		}
		dir = filepath.Dir(dir)
	}
	files, _ := filepath.Glob(filepath.Join(filepath.Dir(dir), "shared", "testdata", "wordpress", "*.xml"))
	if len(files) == 0 {
		t.Skip("no ../shared/testdata/wordpress/*.xml next to the repository")
	}
	sort.Strings(files)
	return files
}

// wxrExpect is what a WXR file holds, read here with encoding/xml
// directly (not with package wxr): what an import must produce.
type wxrExpect struct {
	// posts counts the items by post type (auto-drafts and attachments
	// left out: attachments are tested with a server of their own).
	posts map[string]int
	// comments counts the comments of those items.
	comments int
	// terms are "taxonomy/slug" of every term the file declares or an
	// item names.
	terms map[string]bool
	// titles are "type:title" of the published posts and pages.
	titles []string
}

func expectWXR(t *testing.T, file string) wxrExpect {
	t.Helper()
	type meta struct {
		Key string `xml:"meta_key"`
	}
	var doc struct {
		Channel struct {
			Categories []struct {
				Slug string `xml:"category_nicename"`
			} `xml:"category"`
			Tags []struct {
				Slug string `xml:"tag_slug"`
			} `xml:"tag"`
			Terms []struct {
				Taxonomy string `xml:"term_taxonomy"`
				Slug     string `xml:"term_slug"`
			} `xml:"term"`
			Items []struct {
				Title    string `xml:"title"`
				Type     string `xml:"post_type"`
				Status   string `xml:"status"`
				Comments []struct {
					ID string `xml:"comment_id"`
				} `xml:"comment"`
				Cats []struct {
					Domain string `xml:"domain,attr"`
					Slug   string `xml:"nicename,attr"`
				} `xml:"category"`
				Meta []meta `xml:"postmeta"`
			} `xml:"item"`
		} `xml:"channel"`
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := xml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	e := wxrExpect{posts: map[string]int{}, terms: map[string]bool{}}
	for _, c := range doc.Channel.Categories {
		e.terms["category/"+c.Slug] = true
	}
	for _, c := range doc.Channel.Tags {
		e.terms["post_tag/"+c.Slug] = true
	}
	for _, c := range doc.Channel.Terms {
		e.terms[c.Taxonomy+"/"+c.Slug] = true
	}
	for _, it := range doc.Channel.Items {
		if it.Status == "auto-draft" || it.Type == "attachment" {
			continue
		}
		e.posts[it.Type]++
		e.comments += len(it.Comments)
		for _, c := range it.Cats {
			if c.Domain != "" {
				e.terms[c.Domain+"/"+c.Slug] = true
			}
		}
		if it.Status == "publish" && (it.Type == "post" || it.Type == "page") {
			e.titles = append(e.titles, it.Type+":"+it.Title)
		}
	}
	return e
}

// siteCounts is what a site's database holds, by SQL.
func siteCounts(t *testing.T, c *cluster, sh *shard.Shard, db string) (posts map[string]int, comments int, terms map[string]bool) {
	t.Helper()
	posts = map[string]int{}
	for _, row := range rootQuery(t, c, sh, db, "SELECT post_type, CAST(COUNT(*) AS CHAR) FROM wp_posts WHERE post_status <> 'auto-draft' GROUP BY post_type") {
		k, v, _ := strings.Cut(row, "\t")
		posts[k], _ = strconv.Atoi(v)
	}
	comments, _ = strconv.Atoi(rootQuery(t, c, sh, db, "SELECT CAST(COUNT(*) AS CHAR) FROM wp_comments")[0])
	terms = map[string]bool{}
	for _, row := range rootQuery(t, c, sh, db, "SELECT CONCAT(tt.taxonomy, '/', t.slug) FROM wp_terms t JOIN wp_term_taxonomy tt USING (term_id)") {
		terms[row] = true
	}
	return posts, comments, terms
}

// TestWXRImportThemeUnitTest imports the Theme Unit Test data (and every
// other WXR file of ../shared/testdata/wordpress) into a fresh site each
// and checks, against counts read from the XML here, the posts and pages
// by type, the comments and the terms WordPress stored; running the
// import again adds nothing.
func TestWXRImportThemeUnitTest(t *testing.T) {
	files := sharedWXR(t)
	c := newCluster(t)
	sh := c.start("alpha")
	defer c.deleteAll()
	for i, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			host, uid := fmt.Sprintf("wxr%d.localhost", i), fmt.Sprintf("uid-wxr%d", i)
			c.create(host, uid, "alpha", "WXR", adminFor(t))
			n := sh.NamesFor(uid)
			want := expectWXR(t, file)
			beforePosts, beforeComments, beforeTerms := siteCounts(t, c, sh, n.DB)

			dry, err := sh.ImportWXR(c.ctx, c.get(host), shard.WXRImportRequest{File: file, DryRun: true})
			if err != nil {
				t.Fatal(err)
			}
			if dry.Imported != nil || dry.File.Items["post"] != want.posts["post"] || dry.File.Items["page"] != want.posts["page"] {
				t.Errorf("dry run: %+v, want posts %v", dry.File, want.posts)
			}
			if p, _, _ := siteCounts(t, c, sh, n.DB); fmt.Sprint(p) != fmt.Sprint(beforePosts) {
				t.Fatalf("a dry run changed the posts: %v → %v", beforePosts, p)
			}

			rep, err := sh.ImportWXR(c.ctx, c.get(host), shard.WXRImportRequest{File: file, SkipAttachments: true})
			if err != nil {
				t.Fatalf("%v (report %+v)", err, rep)
			}
			posts, comments, terms := siteCounts(t, c, sh, n.DB)
			for typ, w := range want.posts {
				if got := posts[typ] - beforePosts[typ]; got != w {
					t.Errorf("%s: %d imported, the file has %d (failures %q)", typ, got, w, rep.Imported.Failures)
				}
			}
			if got := comments - beforeComments; got != want.comments {
				t.Errorf("comments: %d imported, the file has %d", got, want.comments)
			}
			newTerms := 0
			for k := range want.terms {
				if !terms[k] {
					t.Errorf("term %s is not in the site", k)
				}
				if !beforeTerms[k] {
					newTerms++
				}
			}
			if got := len(terms) - len(beforeTerms); got != newTerms {
				t.Errorf("terms: %d new in the site, the file has %d new ones", got, newTerms)
			}
			if rep.Imported.Terms != newTerms || rep.Imported.Comments != want.comments || rep.Imported.FailuresTotal != 0 {
				t.Errorf("report: %+v, want %d terms, %d comments, no failures", rep.Imported, newTerms, want.comments)
			}
			t.Logf("%s: posts %v, comments %d, terms %d new; report %+v", filepath.Base(file), want.posts, want.comments, newTerms, rep.Imported)

			// Again: every post stands already; nothing is added.
			again, err := sh.ImportWXR(c.ctx, c.get(host), shard.WXRImportRequest{File: file, SkipAttachments: true})
			if err != nil {
				t.Fatal(err)
			}
			if p2, c2, t2 := siteCounts(t, c, sh, n.DB); fmt.Sprint(p2) != fmt.Sprint(posts) || c2 != comments || len(t2) != len(terms) {
				t.Logf("posts twice: %q", rootQuery(t, c, sh, n.DB, "SELECT CONCAT(post_type, ':', post_title, ':', post_date, ':', post_status) FROM wp_posts GROUP BY post_type, post_title, post_date HAVING COUNT(*) > 1"))
				t.Errorf("a second import changed the site: posts %v → %v, comments %d → %d, terms %d → %d (report %+v)", posts, p2, comments, c2, len(terms), len(t2), again.Imported)
			}
		})
	}
}
