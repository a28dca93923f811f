<?php
// WordPress's database upgrade (wp_upgrade: the schema and upgrade_all's
// migrations), run by the aipress shard through the PHP CLI as the site's
// own Unix user after the site's docroot was moved to another core — what
// wp-admin/upgrade.php does when an administrator clicks "Update WordPress
// Database". Plugins are not loaded (WP_INSTALLING), as in WordPress's own
// upgrade screen. Prints one JSON line with the database version before and
// after and exits 0 when the database is at the core's version; anything
// else (a fatal error included) exits non-zero.
error_reporting(E_ALL & ~E_DEPRECATED & ~E_NOTICE & ~E_WARNING);
$docroot = getenv('AIP_DOCROOT');
$host = getenv('AIP_HOST');
if (!$docroot || !$host) {
	fwrite(STDERR, "missing AIP_DOCROOT or AIP_HOST\n");
	exit(2);
}
$_SERVER['HTTP_HOST'] = $host;
// The shared core's wp-config.php loads the configuration of this docroot.
$_SERVER['DOCUMENT_ROOT'] = $docroot;
$_SERVER['SERVER_NAME'] = preg_replace('/:.*/', '', $host);
$_SERVER['REQUEST_URI'] = '/wp-admin/upgrade.php';
$_SERVER['REQUEST_METHOD'] = 'GET';
$_SERVER['SERVER_PROTOCOL'] = 'HTTP/1.1';
$_SERVER['SERVER_PORT'] = '80';
chdir($docroot);

define('WP_INSTALLING', true);
require $docroot . '/wp-load.php';
require_once ABSPATH . 'wp-admin/includes/upgrade.php';
// No HTTP during the upgrade: nothing it needs is online.
add_filter('pre_http_request', function () { return new WP_Error('aipress_offline', 'no HTTP during the upgrade'); }, 1);

global $wp_version, $wp_db_version;
if (!is_blog_installed()) {
	fwrite(STDERR, "WordPress is not installed in this site's database\n");
	exit(1);
}
$before = (string) __get_option('db_version');
wp_upgrade();
wp_cache_flush();
$after = (string) __get_option('db_version');
$out = [
	'wp_version' => $wp_version,
	'db_version_before' => $before,
	'db_version_after' => $after,
	'core_db_version' => (string) $wp_db_version,
	'upgraded' => $before !== $after,
];
echo json_encode($out), "\n";
if ($after !== (string) $wp_db_version) {
	fwrite(STDERR, "the database is at version $after after the upgrade, not $wp_db_version\n");
	exit(1);
}
