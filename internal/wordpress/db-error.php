<?php
/**
 * db-error.php — installed by AIPress (one copy per shard, linked into each
 * site's wp-content; changes are overwritten).
 *
 * WordPress includes this drop-in instead of its own 500 page when it cannot
 * reach its database (dead_db()). On AIPress that is almost always the
 * shard's MariaDB restarting, for a few seconds: the page says so with 503
 * and Retry-After, and X-Aipress-Retry tells the edge the failure is
 * transient, so it asks again for a visitor's GET or HEAD (within a bounded
 * wait) or answers with its stale cached copy of the page. The edge removes
 * the header before the answer leaves it.
 */
if (!defined('ABSPATH')) {
	// Requested directly, not included by WordPress.
	http_response_code(404);
	exit;
}
if (!headers_sent()) {
	http_response_code(503);
	header('Retry-After: 5');
	header('X-Aipress-Retry: database');
	header('Content-Type: text/html; charset=utf-8');
	header('Cache-Control: no-store');
}
?><!doctype html>
<html><head><meta charset="utf-8"><meta name="robots" content="noindex"><title>Database unavailable</title></head>
<body style="font-family:sans-serif;max-width:40em;margin:4em auto">
<h1>Error establishing a database connection</h1>
<p>This site's database is restarting. Please try again in a few seconds.</p>
</body></html>
