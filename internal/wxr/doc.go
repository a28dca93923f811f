// Package wxr reads WordPress eXtended RSS (WXR) files, the content
// exports of Tools → Export in any WordPress, for import into a site.
//
// Scan reads a WXR file once, streaming (one <item> in memory at a
// time), and hands the caller its authors, terms (categories, tags and
// the generic <wp:term>s) and items (posts, pages, attachments, menu
// items and any other post type, with their terms, meta and comments)
// as Records, then a Summary of what it counted. It refuses what a WXR
// file never needs and an attacker would: a document type declaration
// (DTD: the door to entity expansion — "billion laughs" — and external
// entities, XXE), entity references other than XML's five, files beyond
// Limits (bytes, items) and anything that is not an RSS document with a
// WXR channel; each refusal wraps ErrHostile or ErrBroken and says why.
// Go's encoding/xml does the parsing: it never fetches anything and
// expands no entity it was not given.
//
// Fetcher downloads attachments from the URLs a WXR file names, as the
// WordPress importer does, but only over http or https, only to public
// addresses (checked on the address dialled, after DNS, and on every
// redirect: package egress), within a size limit per file and a count
// limit per import; loopback and private addresses only when the caller
// allows them (tests, private mirrors).
//
// The records are written into the site by WordPress itself: the shard
// runs importer.php (package wordpress) as the site's own Unix user,
// which inserts them with WordPress's API (wp_insert_user, wp_insert_term,
// wp_insert_post, wp_insert_comment, wp_update_nav_menu_item,
// wp_upload_bits) following the WordPress importer plugin's rules. The
// plugin itself is not used: Debian's wordpress package does not ship it
// (dpkg -L wordpress lists only wp-admin/includes/class-wp-importer.php),
// the platform fetches no code from wordpress.org at import time, and
// its parser (SimpleXML or XMLParser on the site's PHP, which is not
// trusted) would read the file with the site's privileges where Go reads
// it here with the refusals above; what reaches PHP is JSON.
package wxr
