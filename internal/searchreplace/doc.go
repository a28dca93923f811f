// Package searchreplace rewrites a WordPress site's URL in its database when
// the site is cloned or moved to another domain, as wp-cli's
// `search-replace --precise` does, without PHP.
//
// # Values
//
// A Replacer rewrites one stored value (Replacer.Rewrite):
//
//   - A value that starts with PHP serialize() output (optionally
//     surrounded by whitespace, which WordPress's maybe_unserialize trims)
//     is parsed token by token. Only string values change: each s:N:"…";
//     whose content changed is written again with its new byte length
//     (S:N:"…"; strings, whose \xx escapes PHP reads but never writes, are
//     decoded, rewritten and escaped again). A string whose content is
//     itself serialised data — WordPress serialises arrays that plugins had
//     serialised already — is rewritten the same way, recursively, up to 64
//     strings deep (deeper ones are left as they were and reported,
//     Result.TooDeep). Every other token (N; b: i: d: r: R: E: C:, array
//     and object headers, array keys and property names) is copied byte for
//     byte: floats are never reformatted and references keep pointing at
//     the same values, because no value is added or removed. Keys are left
//     alone as wp-cli leaves them: rewriting one could collide with another
//     key. C: payloads (a class's own Serializable format) are opaque and
//     not rewritten. Arrays and objects nest without a limit and without
//     recursion (PHP 8.2 accepts 4096 levels, more when
//     unserialize_max_depth is raised). Bytes after the first value, which
//     PHP's unserialize ignores, are rewritten as further values while they
//     parse, then as plain text.
//   - A value that looks serialised (a type letter and ':') but does not
//     parse — custom CSS such as "a:hover{…}", or serialised data broken
//     before the rewrite (wrong lengths, truncated) — is plain text, as
//     wp-cli treats it; broken data that WordPress's is_serialized accepts
//     is reported (Result.Malformed). The parser accepts everything PHP's
//     unserialize does (the tests mutate serialised values and ask PHP), so
//     no value PHP reads is rewritten as text.
//   - Anything else is plain text: every occurrence is replaced, left to
//     right, without rescanning the replacement.
//
// # What is matched
//
// The search string is matched case-sensitively (as wp-cli does) in these
// forms, each replaced by the same form of the replacement:
//
//   - as given: http://old.example;
//   - JSON-escaped as json_encode writes it: http:\/\/old.example, with
//     characters outside ASCII as \u00e9 (the default) or as they are
//     (JSON_UNESCAPED_UNICODE), and with unescaped slashes and \u escapes
//     (JSON_UNESCAPED_SLASHES) — block attributes, REST caches, page
//     builders' JSON in postmeta;
//   - as the block editor writes block attributes: unescaped slashes and
//     non-ASCII, but "--" (an IDN's xn--), '<', '>', '&', '"' and '\' as
//     \u escapes;
//   - percent-encoded as rawurlencode writes it, with upper- or lower-case
//     hex: http%3A%2F%2Fold.example (share links, redirect parameters);
//   - when both strings start with a scheme, their scheme-relative forms
//     //old.example → //new.example, in the encodings above. This catches
//     //old.example/… asset links and https://old.example when the search
//     string was http://old.example; the scheme found in the data is kept.
//     It is the form wp-cli's documentation recommends searching for
//     (wp search-replace '//old' '//new').
//
// wp-cli replaces the literal string only; the extra encodings are what a
// clone or an import needs so that JSON and encoded links follow the site.
//
// Unlike wp-cli, a match must sit on host boundaries: when the search string
// ends with a host character (letter, digit, '-', '_'), a match followed by
// such a character, or by '.' and such a character, is not replaced, so
// http://old.example does not turn http://old.example.org or
// http://old.example-cdn.net into the new domain, while
// "http://old.example." at the end of a sentence, http://old.example/path
// and http://old.example:8080 are replaced (the port is kept). When it
// starts with a letter or digit, a match preceded by a letter, digit, '.',
// '-', '_' or '+' is not replaced either (xhttp://…, sub.old.example for a
// bare host). Bytes outside ASCII never continue a host, so a URL followed
// by a non-breaking space is still replaced. A search string with a port
// (http://old.example:8080) matches only that port.
//
// The characters around a match are read as the text means them: a JSON
// escape (\n, \t, \u0022, \u003e; its backslash not itself escaped) or a
// percent-encoded byte (%2F, %2f, %3D) counts as the character it stands
// for. So "Line one\nhttps:\/\/old.example" in JSON and
// ?url=https%3A%2F%2Fold.example are whole matches (scheme included, so a
// scheme change reaches them, and a bare-host search finds them), while
// \u0041old.example and sub%2Eold.example continue a word or a host and are
// not. A plain "xnold.example" is no match for old.example, and neither is
// a JSON "\\nold.example" (an escaped backslash and the letter n).
//
// Replacing with a string that contains the search string on a boundary
// (http://a.example → http://a.example/blog) is not idempotent: a second
// pass would rewrite again.
//
// # Database
//
// RewriteDatabase walks the base tables of a WordPress database whose names
// have the table prefix. For each it reads the primary key and the text
// columns (char, varchar, the text types, enum and set excluded; no binary
// or blob columns) from information_schema, and reads rows in primary-key
// order, a batch at a time, keyset-paginated, asking the server only for
// rows in which some text column holds Replacer.Probe (a byte-wise LIKE on
// the column cast to binary, so collations cannot hide a match). Changed
// cells are written back by primary key, one transaction per batch.
// Primary-key columns are never rewritten, nor the guid column of the posts
// tables (WordPress's guidance: a GUID identifies the post for feed readers
// and must not change even when the site moves). Tables without a primary
// key are skipped with a warning, as wp-cli skips them. The pass is meant
// for a database nothing else writes to (a clone before it serves).
//
// # Why hand-written
//
// wp-cli is PHP and needs a WordPress bootstrap. The Go tools that exist
// work on SQL dump text: Automattic's go-search-replace replaces in the
// dump and fixes the lengths of the serialised strings around each match,
// which (per its own issue tracker) miscounts the outer lengths of strings
// that contain serialised data, and serfix only repairs lengths after a
// sed. Neither parses the serialisation grammar, checks host boundaries or
// works on a live database by primary key, so this package implements the
// grammar (from PHP's behaviour, checked against php's unserialize in the
// tests) and the pass itself.
package searchreplace
