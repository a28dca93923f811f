package wxr

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// ErrHostile is wrapped by refusals of files that try what a WXR file
// never needs: a DTD, entities, limits exceeded.
var ErrHostile = errors.New("hostile WXR file")

// ErrBroken is wrapped by refusals of files that are not well-formed
// WXR.
var ErrBroken = errors.New("not a WXR file")

// Limits bound what Scan reads; zero fields take the defaults.
type Limits struct {
	// Bytes is the file's largest size (default 512 MiB).
	Bytes int64
	// Items is the most <item>s (default 200,000).
	Items int
}

// LimitsForDisk are the limits on a WXR file for a site with diskMB of
// disk: as many bytes (at least 16 MiB, at most 2 GiB) and 200,000 items.
func LimitsForDisk(diskMB int) Limits {
	return Limits{Bytes: min(max(int64(diskMB)<<20, 16<<20), 2<<30), Items: 200_000}
}

func (l Limits) withDefaults() Limits {
	if l.Bytes <= 0 {
		l.Bytes = 512 << 20
	}
	if l.Items <= 0 {
		l.Items = 200_000
	}
	return l
}

// Site is what the channel says of the exporting site.
type Site struct {
	Title       string `json:"title"`
	Link        string `json:"link"`
	WXRVersion  string `json:"wxr_version"`
	BaseSiteURL string `json:"base_site_url"`
	BaseBlogURL string `json:"base_blog_url"`
}

// Author is a <wp:author>.
type Author struct {
	ID          int64  `json:"id,omitempty"`
	Login       string `json:"login"`
	Email       string `json:"email"`
	DisplayName string `json:"display_name"`
	FirstName   string `json:"first_name"`
	LastName    string `json:"last_name"`
}

// Meta is a key and its value as exported (serialized PHP stays
// serialized: WordPress unserializes it on insert).
type Meta struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// Term is a <wp:category> (taxonomy category), <wp:tag> (post_tag) or
// <wp:term>.
type Term struct {
	ID          int64  `json:"id,omitempty"`
	Taxonomy    string `json:"taxonomy"`
	Slug        string `json:"slug"`
	Name        string `json:"name"`
	Parent      string `json:"parent,omitempty"` // the parent's slug
	Description string `json:"description,omitempty"`
	Meta        []Meta `json:"meta,omitempty"`
}

// ItemTerm is an item's <category domain="…" nicename="…">.
type ItemTerm struct {
	Taxonomy string `json:"taxonomy"`
	Slug     string `json:"slug"`
	Name     string `json:"name"`
}

// Comment is a <wp:comment>.
type Comment struct {
	ID          int64  `json:"id"`
	Author      string `json:"author"`
	AuthorEmail string `json:"author_email"`
	AuthorURL   string `json:"author_url"`
	AuthorIP    string `json:"author_ip"`
	Date        string `json:"date"`
	DateGMT     string `json:"date_gmt"`
	Content     string `json:"content"`
	Approved    string `json:"approved"`
	Type        string `json:"type"`
	Parent      int64  `json:"parent"`
	UserID      int64  `json:"user_id"`
	Meta        []Meta `json:"meta,omitempty"`
}

// Item is an <item>: a post of any type.
type Item struct {
	ID            int64      `json:"id"`
	Title         string     `json:"title"`
	Link          string     `json:"link,omitempty"`
	Creator       string     `json:"creator"`
	GUID          string     `json:"guid"`
	Content       string     `json:"content"`
	Excerpt       string     `json:"excerpt"`
	Date          string     `json:"date"`
	DateGMT       string     `json:"date_gmt"`
	Modified      string     `json:"modified,omitempty"`
	ModifiedGMT   string     `json:"modified_gmt,omitempty"`
	CommentStatus string     `json:"comment_status"`
	PingStatus    string     `json:"ping_status"`
	Name          string     `json:"name"`
	Status        string     `json:"status"`
	Parent        int64      `json:"parent"`
	MenuOrder     int64      `json:"menu_order"`
	Type          string     `json:"type"`
	Password      string     `json:"password"`
	Sticky        bool       `json:"sticky"`
	AttachmentURL string     `json:"attachment_url,omitempty"`
	Terms         []ItemTerm `json:"terms,omitempty"`
	Meta          []Meta     `json:"meta,omitempty"`
	Comments      []Comment  `json:"comments,omitempty"`
	// File and FileName are a fetched attachment's bytes and name
	// (WriteRecords).
	File     []byte `json:"file_b64,omitempty"`
	FileName string `json:"file_name,omitempty"`
}

// Record is one thing Scan found: exactly one field is set.
type Record struct {
	Site   *Site
	Author *Author
	Term   *Term
	Item   *Item
}

// Summary counts what a file holds.
type Summary struct {
	Site    Site           `json:"site"`
	Bytes   int64          `json:"bytes"`
	Authors int            `json:"authors"`
	Terms   map[string]int `json:"terms"` // by taxonomy, declared ones
	Items   map[string]int `json:"items"` // by post type
	// Comments are all the items' comments.
	Comments int `json:"comments"`
	// Attachments are the attachment items (with a URL to fetch).
	Attachments int `json:"attachments"`
}

// counter counts bytes read and refuses beyond a limit.
type counter struct {
	r     io.Reader
	n     int64
	limit int64
}

func (c *counter) Read(p []byte) (int, error) {
	if c.n >= c.limit {
		// One byte more than allowed tells a file of exactly the limit
		// from a larger one.
		var one [1]byte
		if n, _ := c.r.Read(one[:]); n > 0 {
			return 0, fmt.Errorf("%w: the file is larger than %d bytes", ErrHostile, c.limit)
		}
	}
	if int64(len(p)) > c.limit-c.n+1 {
		p = p[:c.limit-c.n+1]
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.n > c.limit {
		return n, fmt.Errorf("%w: the file is larger than %d bytes", ErrHostile, c.limit)
	}
	return n, err
}

// node is an element with its text and children.
type node struct {
	name     xml.Name
	attr     []xml.Attr
	text     strings.Builder
	children []*node
}

func (n *node) attrValue(local string) string {
	for _, a := range n.attr {
		if a.Name.Local == local {
			return a.Value
		}
	}
	return ""
}

// ns names an element's namespace by what it is: "wp", "content",
// "excerpt", "dc" or "" (RSS's own).
func ns(space string) string {
	switch {
	case space == "":
		return ""
	case strings.Contains(space, "/export/1.") && strings.Contains(space, "/excerpt/"):
		return "excerpt"
	case strings.Contains(space, "wordpress.org/export/"):
		return "wp"
	case strings.Contains(space, "purl.org/rss/1.0/modules/content"):
		return "content"
	case strings.Contains(space, "purl.org/dc/elements"):
		return "dc"
	}
	return space
}

func (n *node) key() string {
	if p := ns(n.name.Space); p != "" {
		return p + ":" + n.name.Local
	}
	return n.name.Local
}

// child is the text of n's first child named key ("wp:post_id").
func (n *node) child(key string) string {
	for _, c := range n.children {
		if c.key() == key {
			return strings.TrimSpace(c.text.String())
		}
	}
	return ""
}

// raw is child without trimming (contents keep their whitespace).
func (n *node) raw(key string) string {
	for _, c := range n.children {
		if c.key() == key {
			return c.text.String()
		}
	}
	return ""
}

func (n *node) int(key string) int64 {
	v, _ := strconv.ParseInt(n.child(key), 10, 64)
	return v
}

func (n *node) meta(key string) []Meta {
	var out []Meta
	for _, c := range n.children {
		if c.key() == key {
			out = append(out, Meta{Key: c.child("wp:meta_key"), Value: c.raw("wp:meta_value")})
		}
	}
	return out
}

// maxDepth bounds nesting inside an item or a channel entry: WXR needs 3.
const maxDepth = 16

// readNode reads the element start began (its tokens up to its end).
func readNode(d *xml.Decoder, start xml.StartElement) (*node, error) {
	root := &node{name: start.Name, attr: start.Attr}
	stack := []*node{root}
	for len(stack) > 0 {
		tok, err := d.Token()
		if err != nil {
			return nil, wrapXML(err)
		}
		cur := stack[len(stack)-1]
		switch t := tok.(type) {
		case xml.StartElement:
			if len(stack) >= maxDepth {
				return nil, fmt.Errorf("%w: elements nested deeper than %d in <%s>", ErrHostile, maxDepth, root.name.Local)
			}
			c := &node{name: t.Name, attr: t.Attr}
			cur.children = append(cur.children, c)
			stack = append(stack, c)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			cur.text.Write(t)
		case xml.Directive:
			return nil, directive(t)
		}
	}
	return root, nil
}

func directive(t xml.Directive) error {
	if bytes.HasPrefix(bytes.TrimSpace(t), []byte("DOCTYPE")) {
		return fmt.Errorf("%w: it has a document type declaration (<!DOCTYPE …>): WXR needs none, and a DTD is how entity expansion (billion laughs) and external entities (XXE) get in", ErrHostile)
	}
	return fmt.Errorf("%w: it has a markup declaration <!%.20s…>", ErrHostile, t)
}

func wrapXML(err error) error {
	if errors.Is(err, ErrHostile) {
		return err
	}
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: the file ends early (truncated?)", ErrBroken)
	}
	var se *xml.SyntaxError
	if errors.As(err, &se) && se.Msg == "unexpected EOF" {
		return fmt.Errorf("%w: line %d: the file ends early (truncated?)", ErrBroken, se.Line)
	}
	if errors.As(err, &se) && strings.Contains(se.Msg, "entity") {
		return fmt.Errorf("%w: line %d: %s: WXR uses only XML's five entities and character references", ErrHostile, se.Line, se.Msg)
	}
	return fmt.Errorf("%w: %v", ErrBroken, err)
}

// Scan reads the WXR file r, calling fn with each record in the file's
// order (the site first, then authors and terms as they come, items),
// and returns what it counted. fn's error stops the scan and is
// returned. A refusal wraps ErrHostile or ErrBroken.
func Scan(r io.Reader, lim Limits, fn func(Record) error) (*Summary, error) {
	lim = lim.withDefaults()
	cr := &counter{r: r, limit: lim.Bytes}
	d := xml.NewDecoder(cr)
	d.Strict = true
	// No Entity map: only XML's own five are known; every other
	// reference is a syntax error (wrapXML: refused as hostile).
	d.CharsetReader = func(charset string, in io.Reader) (io.Reader, error) {
		if strings.EqualFold(charset, "us-ascii") || strings.EqualFold(charset, "ascii") {
			return in, nil
		}
		return nil, fmt.Errorf("%w: the file is in %s: only UTF-8 WXR files are read", ErrBroken, charset)
	}
	sum := &Summary{Terms: map[string]int{}, Items: map[string]int{}}
	var (
		depth      int
		sawRSS     bool
		sawChannel bool
		sentSite   bool
		items      int
	)
	sendSite := func() error {
		if sentSite {
			return nil
		}
		sentSite = true
		return fn(Record{Site: &sum.Site})
	}
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, wrapXML(err)
		}
		switch t := tok.(type) {
		case xml.Directive:
			return nil, directive(t)
		case xml.EndElement:
			depth--
		case xml.StartElement:
			depth++
			switch {
			case depth == 1:
				if t.Name.Local != "rss" {
					return nil, fmt.Errorf("%w: the document is <%s>, not an RSS <rss>", ErrBroken, t.Name.Local)
				}
				sawRSS = true
			case depth == 2 && t.Name.Local == "channel":
				sawChannel = true
			case depth == 3 && sawChannel:
				n, err := readNode(d, t)
				depth--
				if err != nil {
					return nil, err
				}
				rec, err := channelEntry(n, sum)
				if err != nil {
					return nil, err
				}
				if rec == nil {
					continue
				}
				if err := sendSite(); err != nil {
					return nil, err
				}
				if rec.Item != nil {
					if items++; items > lim.Items {
						return nil, fmt.Errorf("%w: more than %d items", ErrHostile, lim.Items)
					}
				}
				if err := fn(*rec); err != nil {
					return nil, err
				}
			}
		}
	}
	if !sawRSS || !sawChannel {
		return nil, fmt.Errorf("%w: no <rss><channel>", ErrBroken)
	}
	if sum.Site.WXRVersion == "" {
		return nil, fmt.Errorf("%w: the channel has no <wp:wxr_version>: an RSS feed, not a WordPress export", ErrBroken)
	}
	if err := sendSite(); err != nil {
		return nil, err
	}
	sum.Bytes = cr.n
	return sum, nil
}

// channelEntry turns a child of <channel> into a record (nil: none) and
// counts it.
func channelEntry(n *node, sum *Summary) (*Record, error) {
	switch n.key() {
	case "title":
		sum.Site.Title = strings.TrimSpace(n.text.String())
	case "link":
		sum.Site.Link = strings.TrimSpace(n.text.String())
	case "wp:wxr_version":
		sum.Site.WXRVersion = strings.TrimSpace(n.text.String())
	case "wp:base_site_url":
		sum.Site.BaseSiteURL = strings.TrimSpace(n.text.String())
	case "wp:base_blog_url":
		sum.Site.BaseBlogURL = strings.TrimSpace(n.text.String())
	case "wp:author":
		sum.Authors++
		return &Record{Author: &Author{ID: n.int("wp:author_id"), Login: n.child("wp:author_login"), Email: n.child("wp:author_email"),
			DisplayName: n.child("wp:author_display_name"), FirstName: n.child("wp:author_first_name"), LastName: n.child("wp:author_last_name")}}, nil
	case "wp:category":
		sum.Terms["category"]++
		return &Record{Term: &Term{ID: n.int("wp:term_id"), Taxonomy: "category", Slug: n.child("wp:category_nicename"), Name: n.child("wp:cat_name"),
			Parent: n.child("wp:category_parent"), Description: n.raw("wp:category_description"), Meta: n.meta("wp:termmeta")}}, nil
	case "wp:tag":
		sum.Terms["post_tag"]++
		return &Record{Term: &Term{ID: n.int("wp:term_id"), Taxonomy: "post_tag", Slug: n.child("wp:tag_slug"), Name: n.child("wp:tag_name"),
			Description: n.raw("wp:tag_description"), Meta: n.meta("wp:termmeta")}}, nil
	case "wp:term":
		t := &Term{ID: n.int("wp:term_id"), Taxonomy: n.child("wp:term_taxonomy"), Slug: n.child("wp:term_slug"), Name: n.child("wp:term_name"),
			Parent: n.child("wp:term_parent"), Description: n.raw("wp:term_description"), Meta: n.meta("wp:termmeta")}
		sum.Terms[t.Taxonomy]++
		return &Record{Term: t}, nil
	case "item":
		it := item(n)
		sum.Items[it.Type]++
		sum.Comments += len(it.Comments)
		if it.Type == "attachment" {
			sum.Attachments++
		}
		return &Record{Item: it}, nil
	}
	return nil, nil
}

func item(n *node) *Item {
	it := &Item{ID: n.int("wp:post_id"), Title: n.raw("title"), Link: n.child("link"), Creator: n.child("dc:creator"), GUID: n.child("guid"),
		Content: n.raw("content:encoded"), Excerpt: n.raw("excerpt:encoded"), Date: n.child("wp:post_date"), DateGMT: n.child("wp:post_date_gmt"),
		Modified: n.child("wp:post_modified"), ModifiedGMT: n.child("wp:post_modified_gmt"), CommentStatus: n.child("wp:comment_status"),
		PingStatus: n.child("wp:ping_status"), Name: n.child("wp:post_name"), Status: n.child("wp:status"), Parent: n.int("wp:post_parent"),
		MenuOrder: n.int("wp:menu_order"), Type: n.child("wp:post_type"), Password: n.raw("wp:post_password"), Sticky: n.child("wp:is_sticky") == "1",
		AttachmentURL: n.child("wp:attachment_url"), Meta: n.meta("wp:postmeta")}
	if it.Type == "" {
		it.Type = "post"
	}
	for _, c := range n.children {
		switch c.key() {
		case "category":
			if dom := c.attrValue("domain"); dom != "" {
				it.Terms = append(it.Terms, ItemTerm{Taxonomy: dom, Slug: c.attrValue("nicename"), Name: strings.TrimSpace(c.text.String())})
			}
		case "wp:comment":
			it.Comments = append(it.Comments, Comment{ID: c.int("wp:comment_id"), Author: c.raw("wp:comment_author"),
				AuthorEmail: c.child("wp:comment_author_email"), AuthorURL: c.child("wp:comment_author_url"), AuthorIP: c.child("wp:comment_author_IP"),
				Date: c.child("wp:comment_date"), DateGMT: c.child("wp:comment_date_gmt"), Content: c.raw("wp:comment_content"),
				Approved: c.child("wp:comment_approved"), Type: c.child("wp:comment_type"), Parent: c.int("wp:comment_parent"),
				UserID: c.int("wp:comment_user_id"), Meta: c.meta("wp:commentmeta")})
		}
	}
	if it.Type == "attachment" && it.AttachmentURL == "" {
		it.AttachmentURL = it.GUID
	}
	return it
}
