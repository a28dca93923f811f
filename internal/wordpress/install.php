<?php
// Non-interactive WordPress installation, run by the aipress shard through
// the PHP CLI as the site's own Unix user. Parameters come from the
// environment (AIP_*). Prints one JSON line and exits 0 on success.
error_reporting(E_ALL & ~E_DEPRECATED & ~E_NOTICE & ~E_WARNING);
$env = function (string $k): string {
	$v = getenv($k);
	if ($v === false || $v === '') {
		fwrite(STDERR, "missing $k\n");
		exit(2);
	}
	return $v;
};
$docroot = $env('AIP_DOCROOT');
$host = $env('AIP_HOST');
$_SERVER['HTTP_HOST'] = $host;
// The shared core's wp-config.php loads the configuration of this docroot.
$_SERVER['DOCUMENT_ROOT'] = $docroot;
$_SERVER['SERVER_NAME'] = preg_replace('/:.*/', '', $host);
$_SERVER['REQUEST_URI'] = '/';
$_SERVER['REQUEST_METHOD'] = 'GET';
$_SERVER['SERVER_PROTOCOL'] = 'HTTP/1.1';
$_SERVER['SERVER_PORT'] = '80';

define('WP_INSTALLING', true);
// The installer would mail the admin; sites are created by the platform.
function wp_new_blog_notification($blog_title, $blog_url, $user_id, $password) {}

require $docroot . '/wp-load.php';
require_once ABSPATH . 'wp-admin/includes/upgrade.php';
// No HTTP during installation: the permalink probe hangs offline.
add_filter('pre_http_request', function () { return new WP_Error('aipress_offline', 'no HTTP during installation'); }, 1);

if (get_option('aipress_installed')) {
	echo json_encode(['installed' => true, 'already' => true]), "\n";
	exit(0);
}
$result = wp_install($env('AIP_TITLE'), $env('AIP_ADMIN_USER'), $env('AIP_ADMIN_EMAIL'), true, '', wp_generate_password(40, true, true));
if (is_wp_error($result)) {
	fwrite(STDERR, $result->get_error_message() . "\n");
	exit(1);
}
global $wpdb, $wp_rewrite;
// The control plane keeps only a bcrypt hash of the admin password; phpass
// (WordPress's hasher) verifies bcrypt hashes through crypt().
$hash = getenv('AIP_ADMIN_HASH');
if ($hash !== false && $hash !== '') {
	$wpdb->update($wpdb->users, ['user_pass' => $hash], ['ID' => $result['user_id']]);
	clean_user_cache($result['user_id']);
}
update_option('permalink_structure', '/%postname%/');
$wp_rewrite->set_permalink_structure('/%postname%/');
flush_rewrite_rules(false);
update_option('aipress_installed', (string) time());
echo json_encode(['installed' => true, 'user_id' => $result['user_id']]), "\n";
