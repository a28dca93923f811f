<?php
// Runs a site's due WP-Cron events, started by the aipress shard through
// the PHP CLI as the site's own Unix user (DISABLE_WP_CRON is set in
// wp-config.php, so visitors never trigger cron).
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
$_SERVER['REQUEST_URI'] = '/wp-cron.php';
$_SERVER['REQUEST_METHOD'] = 'GET';
$_SERVER['SERVER_PROTOCOL'] = 'HTTP/1.1';
chdir($docroot);
// Record the run once WordPress is loaded (wp-cron.php may exit early).
register_shutdown_function(function () {
	if (function_exists('update_option')) {
		update_option('aipress_cron_last_run', (string) time(), false);
	}
});
require $docroot . '/wp-cron.php';
