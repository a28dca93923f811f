// Package edge is the HTTP front door of an AIPress shard. It provides:
//
//   - Table, an immutable host → Route index (built with NewTable, looked up
//     without allocating), swapped atomically into a running Server with
//     SetTable, so the control loop can rebuild routing for tens of
//     thousands of sites without locks on the request path; a request keeps
//     the table it started with.
//   - Server, an http.Handler that answers unknown hosts (404), suspended
//     sites (503 maintenance) and sites not ready yet (503, Retry-After),
//     serves static files of a site's docroot itself, and sends everything
//     dynamic to the site's php-fpm pool over FastCGI with WordPress's
//     try_files semantics (existing .php → run it, with PATH_INFO; directory
//     with index.php → run that after the /dir → /dir/ redirect; existing
//     file → serve it; anything else → /index.php with REQUEST_URI intact).
//
// It replaces nginx in front of the per-site pools because the platform needs
// per-site routing that changes at runtime, and because nginx's defaults are
// wrong for it in ways that matter: HTTP_HOST loses the visitor's port (so
// WordPress on a non-80 port redirects forever), and its symlink handling
// cannot tell a symlink to /usr/share/javascript (Debian's WordPress has
// those) from one a site user planted in wp-content/uploads pointing at
// another site's wp-config.php. Here a static file is served only if its real
// path is inside the docroot or one of Config.AllowedSymlinkRoots, and it is
// then opened through an os.Root so that a symlink swapped in after the check
// still cannot escape. Dot-files, PHP source (any spelling), dumps, logs and
// backups are never served, and PHP is never run from wp-content/uploads,
// the one directory site users can write. Static files up to 256 KiB are
// kept in memory, revalidated by stat, text ones with a gzip variant made
// once (package precompress) for visitors that accept gzip.
//
// The FastCGI client is hand-written (fastcgi.go, about 250 lines) rather
// than github.com/yookoala/gofast v0.8.0, because gofast gets in the way of
// correct params and streaming:
//
//   - it reads PHP's response headers with a 1 KiB bufio.Reader and answers
//     500 to any header line longer than that (long Set-Cookie, CSP, Link);
//   - it splits the FCGI_PARAMS stream at arbitrary byte boundaries, while
//     php-fpm decodes each PARAMS record on its own, so a request whose
//     headers exceed one 64 KiB record loses or corrupts parameters (the
//     client here packs whole name/value pairs per record);
//   - it writes its own 500 responses and swallows body-read errors into
//     the stderr stream, so the edge could neither return 413 / 502 with a
//     safe message nor log the cause;
//   - when the visitor disconnects mid-response nothing closes its internal
//     pipe, leaking the goroutine that copies php-fpm's output;
//   - it never flushes, so flush() in PHP does not reach the visitor.
//
// Each request uses one connection (FCGI_KEEP_CONN off), as nginx does by
// default; a unix-socket connect is cheap next to running PHP, and a
// connection through a remote shard's gateway (gateway.go) costs a resumed
// TLS 1.3 handshake (about 0.6 ms of CPU here, against tens of ms of PHP). A request
// body is read completely before the pool is dialled (and before the PHP
// middlewares, the WAF among them, see it), as nginx's request buffering
// does: up to 64 KiB in memory, larger ones in an unlinked temporary file in
// Config.TempDir, capped at Config.MaxBodyBytes (413). It must arrive by
// Config.BodyTimeout plus one second per Config.MinBodyRate bytes (a read
// deadline on the connection, moved on as bytes arrive; 408 beyond), so a
// visitor who trickles a body holds an edge goroutine, never one of the
// site's few PHP workers. PHP then gets the body with its CONTENT_LENGTH
// (chunked requests too: php-fpm needs it) while its response is read.
//
// X-Forwarded-For/-Proto/-Host sent to PHP are set by the edge, replacing
// whatever the visitor sent: the edge is the first hop. Request headers whose
// names contain "_" and the Proxy header (httpoxy) are not passed to PHP.
//
// Every response carries a random X-Request-Id; errors are logged with their
// cause and that id, and the visitor sees only a safe message.
package edge
