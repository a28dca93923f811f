package wxr_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/aipress/aipress/internal/wxr"
)

const head = `<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:excerpt="http://wordpress.org/export/1.2/excerpt/" xmlns:content="http://purl.org/rss/1.0/modules/content/" xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:wp="http://wordpress.org/export/1.2/">
<channel><title>Blog</title><link>http://old.example</link><wp:wxr_version>1.2</wp:wxr_version>
<wp:base_site_url>http://old.example</wp:base_site_url><wp:base_blog_url>http://old.example</wp:base_blog_url>
`

const good = head + `<wp:author><wp:author_id>3</wp:author_id><wp:author_login><![CDATA[ann]]></wp:author_login><wp:author_email>ann@old.example</wp:author_email><wp:author_display_name>Ann &amp; Co</wp:author_display_name></wp:author>
<wp:category><wp:term_id>5</wp:term_id><wp:category_nicename>news</wp:category_nicename><wp:category_parent></wp:category_parent><wp:cat_name><![CDATA[News]]></wp:cat_name></wp:category>
<wp:tag><wp:term_id>6</wp:term_id><wp:tag_slug>go</wp:tag_slug><wp:tag_name>Go</wp:tag_name></wp:tag>
<wp:term><wp:term_id>7</wp:term_id><wp:term_taxonomy>nav_menu</wp:term_taxonomy><wp:term_slug>main</wp:term_slug><wp:term_name>Main</wp:term_name></wp:term>
<item><title>Hello &lt;World&gt;</title><dc:creator>ann</dc:creator><guid isPermaLink="false">http://old.example/?p=10</guid>
<content:encoded><![CDATA[<p>Body &amp; soul</p>
]]></content:encoded><excerpt:encoded><![CDATA[Short]]></excerpt:encoded>
<wp:post_id>10</wp:post_id><wp:post_date>2024-05-01 10:00:00</wp:post_date><wp:post_date_gmt>2024-05-01 08:00:00</wp:post_date_gmt>
<wp:post_name>hello</wp:post_name><wp:status>publish</wp:status><wp:post_parent>0</wp:post_parent><wp:menu_order>0</wp:menu_order><wp:post_type>post</wp:post_type><wp:is_sticky>1</wp:is_sticky>
<category domain="category" nicename="news"><![CDATA[News]]></category><category domain="post_tag" nicename="go">Go</category>
<wp:postmeta><wp:meta_key>_thumbnail_id</wp:meta_key><wp:meta_value><![CDATA[11]]></wp:meta_value></wp:postmeta>
<wp:comment><wp:comment_id>1</wp:comment_id><wp:comment_author><![CDATA[Bob]]></wp:comment_author><wp:comment_date>2024-05-02 10:00:00</wp:comment_date><wp:comment_content>Nice</wp:comment_content><wp:comment_approved>1</wp:comment_approved><wp:comment_parent>0</wp:comment_parent></wp:comment>
</item>
<item><title>pic</title><wp:post_id>11</wp:post_id><wp:post_type>attachment</wp:post_type><wp:status>inherit</wp:status><wp:attachment_url>URL</wp:attachment_url></item>
</channel></rss>
`

func scan(t *testing.T, doc string) ([]wxr.Record, *wxr.Summary, error) {
	t.Helper()
	var recs []wxr.Record
	sum, err := wxr.Scan(strings.NewReader(doc), wxr.Limits{Bytes: 1 << 20, Items: 10}, func(r wxr.Record) error {
		recs = append(recs, r)
		return nil
	})
	return recs, sum, err
}

func TestScan(t *testing.T) {
	recs, sum, err := scan(t, good)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Authors != 1 || sum.Terms["category"] != 1 || sum.Terms["post_tag"] != 1 || sum.Terms["nav_menu"] != 1 ||
		sum.Items["post"] != 1 || sum.Items["attachment"] != 1 || sum.Comments != 1 || sum.Attachments != 1 ||
		sum.Site.WXRVersion != "1.2" || sum.Site.BaseBlogURL != "http://old.example" {
		t.Errorf("summary %+v", sum)
	}
	if len(recs) != 7 || recs[0].Site == nil {
		t.Fatalf("%d records", len(recs))
	}
	a, p := recs[1].Author, recs[5].Item
	if a.Login != "ann" || a.ID != 3 || a.DisplayName != "Ann & Co" {
		t.Errorf("author %+v", a)
	}
	if p.Title != "Hello <World>" || p.Content != "<p>Body &amp; soul</p>\n" || p.Excerpt != "Short" || !p.Sticky || p.Creator != "ann" ||
		len(p.Terms) != 2 || p.Terms[1] != (wxr.ItemTerm{Taxonomy: "post_tag", Slug: "go", Name: "Go"}) ||
		len(p.Meta) != 1 || p.Meta[0].Value != "11" || len(p.Comments) != 1 || p.Comments[0].Author != "Bob" {
		t.Errorf("item %+v", p)
	}
}

// TestScanRefuses: hostile and broken files are refused with the reason.
func TestScanRefuses(t *testing.T) {
	laughs := `<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>` + good[len(`<?xml version="1.0" encoding="UTF-8"?>`):]
	xxe := `<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>` + strings.Replace(good[len(`<?xml version="1.0" encoding="UTF-8"?>`):], ">Nice<", ">&xxe;<", 1)
	for _, tc := range []struct {
		name, doc string
		want      error
		reason    string
	}{
		{"billion laughs", laughs, wxr.ErrHostile, "document type declaration"},
		{"XXE", xxe, wxr.ErrHostile, "document type declaration"},
		{"undeclared entity", strings.Replace(good, ">Nice<", ">&lol9;<", 1), wxr.ErrHostile, "entity"},
		{"too many items", head + strings.Repeat("<item><wp:post_type>post</wp:post_type></item>", 11) + "</channel></rss>", wxr.ErrHostile, "more than 10 items"},
		{"too large", head + "<item><content:encoded>" + strings.Repeat("x", 1<<20) + "</content:encoded></item></channel></rss>", wxr.ErrHostile, "larger than"},
		{"too deep", head + "<item>" + strings.Repeat("<a>", 20) + strings.Repeat("</a>", 20) + "</item></channel></rss>", wxr.ErrHostile, "nested deeper"},
		{"truncated", good[:len(good)/2], wxr.ErrBroken, "ends early"},
		{"not RSS", `<?xml version="1.0"?><html><body/></html>`, wxr.ErrBroken, "not an RSS"},
		{"a feed, not an export", `<?xml version="1.0"?><rss><channel><title>x</title><item><title>y</title></item></channel></rss>`, wxr.ErrBroken, "wxr_version"},
		{"latin1", strings.Replace(good, "UTF-8", "ISO-8859-1", 1), wxr.ErrBroken, "only UTF-8"},
		{"malformed", strings.Replace(good, "</item>", "</itme>", 1), wxr.ErrBroken, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := scan(t, tc.doc)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.reason) {
				t.Errorf("got %v, want %v with %q", err, tc.want, tc.reason)
			}
		})
	}
}

// TestWriteRecords: attachments are fetched only from allowed addresses;
// the others are reported with the reason.
func TestWriteRecords(t *testing.T) {
	img := bytes.Repeat([]byte{0x89, 'P', 'N', 'G'}, 100)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/pic.png":
			w.Write(img)
		case "/big.png":
			w.Write(make([]byte, 2000))
		case "/redirect":
			http.Redirect(w, r, "file:///etc/passwd", http.StatusFound)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	for _, tc := range []struct {
		name, url string
		allow     bool
		reason    string
	}{
		{"allowed", srv.URL + "/pic.png", true, ""},
		{"loopback refused", srv.URL + "/pic.png", false, "loopback"},
		{"localhost refused", strings.Replace(srv.URL, "127.0.0.1", "localhost", 1) + "/pic.png", false, "loopback"},
		{"private refused", "http://10.1.2.3/pic.png", false, "private address"},
		{"metadata refused", "http://169.254.169.254/latest/meta-data/", false, "link-local"},
		{"file scheme", "file:///etc/passwd", true, "only http and https"},
		{"redirect to file", srv.URL + "/redirect", true, "only http and https"},
		{"too large", srv.URL + "/big.png", true, "limit of 1000"},
		{"missing", srv.URL + "/gone.png", true, "404"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := strings.Replace(good, "URL", tc.url, 1)
			var out bytes.Buffer
			f := wxr.NewFetcher(wxr.FetchLimits{Bytes: 1000}, tc.allow)
			n, fails, err := wxr.WriteRecords(context.Background(), strings.NewReader(doc), wxr.Limits{}, f, t.TempDir(), &out, nil)
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			if tc.reason == "" {
				if n != 1 || len(fails) != 0 || len(lines) != 6 || !strings.Contains(lines[5], `"file_name":"pic.png"`) {
					t.Errorf("fetched %d, failures %+v, %d lines", n, fails, len(lines))
				}
				return
			}
			if n != 0 || len(fails) != 1 || !strings.Contains(fails[0].Reason, tc.reason) || len(lines) != 5 {
				t.Errorf("fetched %d, failures %+v (want %q), %d lines", n, fails, tc.reason, len(lines))
			}
		})
	}
	// Without a fetcher attachments are left out; the rest is JSON lines.
	var out bytes.Buffer
	if _, _, err := wxr.WriteRecords(context.Background(), strings.NewReader(good), wxr.Limits{}, nil, os.TempDir(), &out, nil); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{`{"t":"author","id":3,"login":"ann"`, `{"t":"term","id":5,"taxonomy":"category","slug":"news"`, `{"t":"item","id":10,"title":"Hello \u003cWorld\u003e"`} {
		if !strings.Contains(got, want) {
			t.Errorf("records lack %s:\n%s", want, got)
		}
	}
	if strings.Count(got, "\n") != 5 {
		t.Errorf("records:\n%s", got)
	}
}
