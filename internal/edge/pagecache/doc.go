// Package pagecache is the edge's full-page cache for WordPress sites: an
// edge.Middleware that keeps anonymous pages in memory, shares one PHP
// request among all visitors of a cold page, serves stale pages while it
// refreshes them or while PHP is failing, and purges by URL, by surrogate
// tag or by site (it implements edge.Purger).
//
// It is hand-written: no maintained Go library does a WordPress-aware page
// cache with surrogate tags. General HTTP caches (RFC 9111) know neither
// WordPress's bypass rules (login, comment-author and WooCommerce cookies,
// /wp-admin/, wp-login.php, previews, REST) nor per-site tag purges, and the
// policy — TTL from the site spec, not from PHP, which sends no caching
// headers for anonymous pages — is ours. The pieces are small: a map and a
// container/list LRU under one mutex, per-site indexes by tag and by URL,
// and a flight map for coalescing.
//
// # What is cached
//
// GET and HEAD (HEAD shares GET's entry; a HEAD miss is fetched from PHP
// as a GET, because WordPress answers HEAD with an empty body) for routes
// whose Options.CacheTTL is positive, unless a bypass rule matches (see
// BypassReason): other methods, /wp-admin/, any *.php script but
// /index.php, /wp-json/ and ?rest_route= (all REST is bypassed, even
// anonymous GETs: simpler and safe), feeds and sitemaps unless
// Config.CacheFeeds, previews, static assets by extension (the edge serves
// them from disk), an Authorization header, and WordPress / WooCommerce
// session cookies (wordpress_test_cookie alone does not bypass).
//
// A response is stored when its status is 200, 301 or 404 (404s for at most
// a minute), it sets no cookie, its Cache-Control says neither private,
// no-store nor no-cache (s-maxage, else max-age, caps the TTL), it does not
// vary on * or Cookie (other Vary values are ignored; an entry with a
// Content-Encoding is served only to visitors accepting it), and it is at
// most Config.MaxObjectBytes (larger responses stream through). Note that
// WordPress itself sends no-cache headers with its 404 pages, so those are
// not stored.
//
// A stored 200 of a textual type without a Content-Encoding gets a gzip
// variant when it is stored (package precompress: compressed once, not per
// visitor); visitors whose Accept-Encoding takes gzip get it (with a weak
// ETag), the others and Range requests the identity bytes, and both say
// Vary: Accept-Encoding. The variant counts against MaxBytes.
//
// The key is scheme, lower-cased host with the port the visitor sent
// (WordPress builds links from Host), escaped path and the query with
// tracking parameters (utm_*, fbclid, gclid …) removed and the rest sorted.
// On a request the cache may store, PHP sees the URL as the key spells it
// (keyedRequest): QUERY_STRING, REQUEST_URI and so $_GET lose the tracking
// parameters and the empty pairs the key ignores, and path and pairs are
// percent-encoded canonically (order kept). Otherwise a page reflecting
// utm_source, or a raw "<" that the key spells %3C, would be stored with
// the first visitor's value and served to everyone. Requests that bypass
// the cache (logged in, POST …) reach PHP exactly as sent; analytics that
// read utm_* must do so in the browser, as on any cached page.
//
// # X-Cache
//
// Every response passing the middleware carries X-Cache: HIT (served from a
// stored entry, with Age), MISS (PHP was asked for this visitor, or the
// visitor waited for another visitor's request of the same cold page —
// waiters are labelled MISS because they waited for PHP), BYPASS (never
// cached) or STALE (an expired entry served while one background request
// refreshes it, or because PHP failed with an error or a 5xx). The same
// value goes to edge.InfoFrom(ctx).Cache. The X-AIPress-Tags header that
// PHP uses to tag a page is always removed from the response.
//
// # Coalescing, purges and consistency
//
// One upstream request runs per cold key; the visitor that started it gets
// the response streamed while it is recorded, the others wait and get the
// stored entry. A fill continues when its visitor leaves (bounded by
// Config.FillTimeout) so the waiters still get it. If the response turns
// out not to be storable the waiters each go to PHP themselves and the key
// is marked "uncacheable" for a short while so later visitors do not queue
// behind each other (Varnish's hit-for-miss). golang.org/x/sync/singleflight
// is not used: waiters must be able to give up when their visitor leaves and
// must tell "not shareable" from "shared", which is simpler with the
// twenty-line flight map here.
//
// Every purge bumps the site's generation; a fill stores its response only
// if the generation it started with is still current, so a page rendered
// before a purge is never stored after it.
package pagecache
