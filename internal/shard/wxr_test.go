package shard_test

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
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

// attachmentWXR is a WXR file with a post whose content and featured
// image name an attachment at base/pic.png.
func attachmentWXR(base string) string {
	return `<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:excerpt="http://wordpress.org/export/1.2/excerpt/" xmlns:content="http://purl.org/rss/1.0/modules/content/" xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:wp="http://wordpress.org/export/1.2/">
<channel><title>Pictures</title><link>http://pictures.example</link><wp:wxr_version>1.2</wp:wxr_version>
<wp:author><wp:author_id>2</wp:author_id><wp:author_login>painter</wp:author_login><wp:author_email>painter@pictures.example</wp:author_email><wp:author_display_name>The Painter</wp:author_display_name></wp:author>
<item><title>Sunflowers</title><dc:creator>painter</dc:creator><guid isPermaLink="false">http://pictures.example/?p=20</guid>
<content:encoded><![CDATA[<p>Look: <img src="` + base + `/pic.png"> <img src="` + base + `/pic-150x150.png"></p>]]></content:encoded><excerpt:encoded><![CDATA[]]></excerpt:encoded>
<wp:post_id>20</wp:post_id><wp:post_date>2024-06-01 10:00:00</wp:post_date><wp:post_date_gmt>2024-06-01 10:00:00</wp:post_date_gmt>
<wp:post_name>sunflowers</wp:post_name><wp:status>publish</wp:status><wp:post_parent>0</wp:post_parent><wp:menu_order>0</wp:menu_order><wp:post_type>post</wp:post_type>
<wp:postmeta><wp:meta_key>_thumbnail_id</wp:meta_key><wp:meta_value><![CDATA[21]]></wp:meta_value></wp:postmeta>
</item>
<item><title>pic</title><dc:creator>painter</dc:creator><guid isPermaLink="false">` + base + `/pic.png</guid>
<wp:post_id>21</wp:post_id><wp:post_date>2024-06-01 09:00:00</wp:post_date><wp:post_date_gmt>2024-06-01 09:00:00</wp:post_date_gmt>
<wp:post_name>pic</wp:post_name><wp:status>inherit</wp:status><wp:post_parent>20</wp:post_parent><wp:menu_order>0</wp:menu_order><wp:post_type>attachment</wp:post_type>
<wp:attachment_url>` + base + `/pic.png</wp:attachment_url></item>
<item><title>gone</title><guid isPermaLink="false">` + base + `/gone.png</guid>
<wp:post_id>22</wp:post_id><wp:post_date>2024-06-01 09:00:00</wp:post_date><wp:status>inherit</wp:status><wp:post_type>attachment</wp:post_type>
<wp:attachment_url>` + base + `/gone.png</wp:attachment_url></item>
</channel></rss>
`
}

// TestWXRRoundTrip imports WXR content (the Theme Unit Test data, and a
// post with an attachment fetched from a server of the test's), exports
// the site as an archive and imports that under a new domain (posts,
// options, users, uploads and pages compared), and exports the site as
// WXR, which WordPress's export produced and a fresh site imports.
func TestWXRRoundTrip(t *testing.T) {
	files := sharedWXR(t)
	png, err := os.ReadFile("/usr/share/wordpress/wp-admin/images/w-logo-blue.png")
	if err != nil {
		t.Skip("no PNG of WordPress's to serve:", err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/pic.png" {
			w.Write(png)
			return
		}
		http.NotFound(w, r)
	}))
	defer srv.Close()
	c := newCluster(t)
	sh := c.start("alpha")
	defer c.deleteAll()
	const host, uid = "wxrsrc.localhost", "uid-wxrsrc"
	c.create(host, uid, "alpha", "Round Trip", adminFor(t))
	n := sh.NamesFor(uid)
	for _, f := range files {
		if strings.Contains(f, "themeunittest") {
			if _, err := sh.ImportWXR(c.ctx, c.get(host), shard.WXRImportRequest{File: f, SkipAttachments: true}); err != nil {
				t.Fatal(err)
			}
		}
	}
	pics := filepath.Join(t.TempDir(), "pics.xml")
	os.WriteFile(pics, []byte(attachmentWXR(srv.URL)), 0o600)
	// Without leave to reach loopback, the server is not asked.
	rep, err := sh.ImportWXR(c.ctx, c.get(host), shard.WXRImportRequest{File: pics})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Fetched != 0 || len(rep.FetchFailures) != 2 || !strings.Contains(rep.FetchFailures[0].Reason, "loopback") {
		t.Errorf("fetches without leave: %d, failures %+v", rep.Fetched, rep.FetchFailures)
	}
	rootExec(t, c, sh, n.DB, "DELETE FROM wp_posts WHERE post_name = 'sunflowers'")
	rep, err = sh.ImportWXR(c.ctx, c.get(host), shard.WXRImportRequest{File: pics, AllowPrivateFetch: true})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Fetched != 1 || len(rep.FetchFailures) != 1 || !strings.Contains(rep.FetchFailures[0].Reason, "404") || rep.Imported.Attachments != 1 || rep.Imported.UsersCreated != 0 {
		t.Errorf("report %+v, imported %+v", rep, rep.Imported)
	}
	oldURL := "http://" + host + ":" + c.port
	upload := "/wp-content/uploads/2024/06/pic.png"
	if got, _ := os.ReadFile(filepath.Join(n.Docroot, upload)); !bytes.Equal(got, png) {
		t.Errorf("the attachment in uploads: %d bytes, want %d", len(got), len(png))
	}
	content := rootQuery(t, c, sh, n.DB, "SELECT post_content FROM wp_posts WHERE post_name = 'sunflowers'")
	if len(content) != 1 || !strings.Contains(content[0], oldURL+upload) || !strings.Contains(content[0], oldURL+"/wp-content/uploads/2024/06/pic-150x150.png") || strings.Contains(content[0], srv.URL) {
		t.Errorf("the post's content names %q, want the new upload's URL", content)
	}
	if thumb := rootQuery(t, c, sh, n.DB, "SELECT p.post_type FROM wp_postmeta m JOIN wp_posts p ON p.ID = m.meta_value JOIN wp_posts s ON s.ID = m.post_id WHERE m.meta_key = '_thumbnail_id' AND s.post_name = 'sunflowers'"); len(thumb) != 1 || thumb[0] != "attachment" {
		t.Errorf("the featured image is %q, want the imported attachment", thumb)
	}
	if author := rootQuery(t, c, sh, n.DB, "SELECT u.user_login FROM wp_posts p JOIN wp_users u ON u.ID = p.post_author WHERE p.post_name = 'sunflowers'"); len(author) != 1 || author[0] != "painter" {
		t.Errorf("the post's author is %q, want the WXR's painter", author)
	}
	c.routes()
	c.check(host, "/sunflowers/", 200, oldURL+upload)
	c.check(host, upload, 200, "PNG")

	// The archive, imported under a new domain.
	archive := filepath.Join(t.TempDir(), "site.tar.gz")
	f, err := os.Create(archive)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sh.ExportSite(c.ctx, c.get(host), f, nil); err != nil {
		t.Fatal(err)
	}
	f.Close()
	const dest, destUID = "wxrdest.localhost", "uid-wxrdest"
	if _, err := sh.ImportSite(c.ctx, c.importTarget(dest, destUID, "alpha"), shard.ImportRequest{Archive: archive}); err != nil {
		t.Fatal(err)
	}
	c.convergeReady(dest, "alpha")
	nd := sh.NamesFor(destUID)
	newURL := "http://" + dest + ":" + c.port
	for _, q := range []string{
		"SELECT CONCAT(post_type, ':', post_status, ':', post_name, ':', post_title) FROM wp_posts WHERE post_type NOT IN ('revision', 'customize_changeset') ORDER BY ID",
		"SELECT CONCAT(user_login, ':', user_email, ':', user_pass) FROM wp_users ORDER BY ID",
		"SELECT CONCAT(option_name, '=', option_value) FROM wp_options WHERE option_name IN ('blogname', 'sticky_posts', 'nav_menu_options', 'permalink_structure', 'template') ORDER BY option_name",
		"SELECT CONCAT(t.slug, ':', tt.taxonomy, ':', tt.count) FROM wp_terms t JOIN wp_term_taxonomy tt USING (term_id) ORDER BY t.term_id",
		"SELECT CAST(COUNT(*) AS CHAR) FROM wp_comments",
	} {
		want, got := rootQuery(t, c, sh, n.DB, q), rootQuery(t, c, sh, nd.DB, q)
		if !slices.Equal(got, want) || len(want) == 0 {
			t.Errorf("%s:\n got %d rows %.300q\nwant %d rows %.300q", q, len(got), got, len(want), want)
		}
	}
	if got, _ := os.ReadFile(filepath.Join(nd.Docroot, upload)); !bytes.Equal(got, png) {
		t.Errorf("the imported site's upload: %d bytes, want %d", len(got), len(png))
	}
	c.check(dest, "/sunflowers/", 200, newURL+upload)
	for _, p := range []string{"/", "/sunflowers/", "/about/"} {
		code, _, body := c.request("GET", dest, p, nil, nil)
		_, _, orig := c.request("GET", host, p, nil, nil)
		if code != 200 || strings.Contains(body, oldURL) {
			t.Errorf("%s on the imported site (%d) names the old URL:\n%.600s", p, code, body)
		}
		// The host, in every escape WordPress writes a URL in.
		if want := strings.NewReplacer(host+":", dest+":", host+"%3A", dest+"%3A").Replace(orig); want != body {
			i := 0
			for i < min(len(want), len(body)) && want[i] == body[i] {
				i++
			}
			t.Errorf("%s on the imported site differs from the original's with the URL rewritten, at byte %d:\n got %.200q\nwant %.200q", p, i, body[max(0, i-100):], want[max(0, i-100):])
		}
	}

	// WordPress's own WXR export, imported into a fresh site.
	var wx bytes.Buffer
	sum, err := sh.ExportWXR(c.ctx, c.get(host), &wx)
	if err != nil {
		t.Fatal(err)
	}
	posts, _, _ := siteCounts(t, c, sh, n.DB)
	if sum.Items["post"] != posts["post"] || sum.Items["page"] != posts["page"] || sum.Items["attachment"] != posts["attachment"] || !strings.Contains(wx.String(), "<wp:wxr_version>1.2</wp:wxr_version>") {
		t.Errorf("the WXR export counts %+v, the site has %v", sum, posts)
	}
	exported := filepath.Join(t.TempDir(), "export.xml")
	os.WriteFile(exported, wx.Bytes(), 0o600)
	const fresh, freshUID = "wxrfresh.localhost", "uid-wxrfresh"
	c.create(fresh, freshUID, "alpha", "Fresh", adminFor(t))
	nf := sh.NamesFor(freshUID)
	if _, err := sh.ImportWXR(c.ctx, c.get(fresh), shard.WXRImportRequest{File: exported, SkipAttachments: true}); err != nil {
		t.Fatal(err)
	}
	// The fresh site's own first post and sample page have the titles of
	// the original's.
	titles := "SELECT DISTINCT CONCAT(post_type, ':', post_title) FROM wp_posts WHERE post_status = 'publish' AND post_type IN ('post', 'page') ORDER BY 1"
	if got, want := rootQuery(t, c, sh, nf.DB, titles), rootQuery(t, c, sh, n.DB, titles); !slices.Equal(got, want) {
		t.Errorf("posts and pages of the site imported from the WXR export:\n got %d %.400q\nwant %d %.400q", len(got), got, len(want), want)
	}
}
