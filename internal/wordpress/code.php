<?php
// Observes and applies a site's code (plugins, themes, options), run by the
// aipress shard through the PHP CLI as the site's own Unix user, in the
// site's own context (its wp-config.php, database and wp-content).
//
// AIP_CODE_MODE=observe prints what the site runs; AIP_CODE_MODE=apply
// applies AIP_CODE_INPUT (JSON: deactivate, activate — plugin folders —,
// theme, options) and prints what it did. Either way the last line of
// stdout is one JSON object; on failure it has "error" (and, for a fatal
// PHP error, "fatal" with PHP's own message) and the exit status is not 0.
error_reporting(E_ALL & ~E_DEPRECATED & ~E_NOTICE & ~E_WARNING & ~E_USER_DEPRECATED & ~E_USER_NOTICE & ~E_USER_WARNING);
$aip_docroot = getenv('AIP_DOCROOT');
$aip_host = getenv('AIP_HOST');
$aip_mode = getenv('AIP_CODE_MODE');
if (!$aip_docroot || !$aip_host || !in_array($aip_mode, ['observe', 'apply'], true)) {
	fwrite(STDERR, "missing AIP_DOCROOT, AIP_HOST or AIP_CODE_MODE\n");
	exit(2);
}
$aip_input = [];
if ($aip_mode === 'apply') {
	$aip_input = json_decode((string) getenv('AIP_CODE_INPUT'), true);
	if (!is_array($aip_input)) {
		fwrite(STDERR, "AIP_CODE_INPUT is not a JSON object\n");
		exit(2);
	}
}
// What is being done, for the report of a fatal error that ends PHP.
$GLOBALS['aip_step'] = 'loading WordPress';
$GLOBALS['aip_done'] = false;
function aip_out(array $r, int $code) {
	$GLOBALS['aip_done'] = true;
	echo "\n", json_encode($r, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE), "\n";
	exit($code);
}
// A fatal error (in a plugin being activated, or in one WordPress loads)
// ends PHP; this reports it as the last line, before anything else runs at
// shutdown.
register_shutdown_function(function () {
	if ($GLOBALS['aip_done']) {
		return;
	}
	$e = error_get_last();
	$fatal = $e && in_array($e['type'], [E_ERROR, E_PARSE, E_CORE_ERROR, E_COMPILE_ERROR, E_USER_ERROR, E_RECOVERABLE_ERROR], true);
	$msg = $fatal ? sprintf('PHP Fatal error: %s in %s on line %d', $e['message'], $e['file'], $e['line']) : 'PHP stopped (exit or die)';
	$GLOBALS['aip_done'] = true;
	echo "\n", json_encode(['error' => $GLOBALS['aip_step'] . ': ' . $msg, 'step' => $GLOBALS['aip_step'], 'fatal' => $fatal ? $msg : ''], JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE), "\n";
});

$_SERVER['HTTP_HOST'] = $aip_host;
// The shared core's wp-config.php loads the configuration of this docroot.
$_SERVER['DOCUMENT_ROOT'] = $aip_docroot;
$_SERVER['SERVER_NAME'] = preg_replace('/:.*/', '', $aip_host);
$_SERVER['REQUEST_URI'] = '/wp-admin/plugins.php';
$_SERVER['REQUEST_METHOD'] = 'GET';
$_SERVER['SERVER_PROTOCOL'] = 'HTTP/1.1';
$_SERVER['SERVER_PORT'] = '80';
chdir($aip_docroot);
// WordPress's own fatal error handler would answer with a page (and mail
// the admin about recovery mode); this script reports fatals itself.
define('WP_DISABLE_FATAL_ERROR_HANDLER', true);
require $aip_docroot . '/wp-load.php';
require_once ABSPATH . 'wp-admin/includes/plugin.php';
require_once ABSPATH . 'wp-admin/includes/theme.php';
// No HTTP: a plugin's activation must not call out through WordPress.
add_filter('pre_http_request', function () { return new WP_Error('aipress_offline', 'no HTTP during code changes'); }, 1);

// aip_plugins maps each plugin folder (a single-file plugin: its file name)
// to its main file, version and state.
function aip_plugins(): array {
	wp_clean_plugins_cache(false);
	$out = [];
	foreach (get_plugins() as $file => $data) {
		$folder = strpos($file, '/') !== false ? dirname($file) : $file;
		if (isset($out[$folder])) {
			// Several plugin files in one folder: the one named like it.
			if ($file !== $folder . '/' . $folder . '.php') {
				continue;
			}
		}
		$out[$folder] = ['name' => $folder, 'file' => $file, 'title' => (string) $data['Name'], 'version' => (string) $data['Version'], 'active' => is_plugin_active($file)];
	}
	ksort($out);
	return $out;
}

function aip_observe(array $names): array {
	$themes = [];
	$current = get_stylesheet();
	foreach (wp_get_themes(['errors' => null]) as $slug => $t) {
		$themes[] = ['name' => (string) $slug, 'title' => (string) $t->get('Name'), 'version' => (string) $t->get('Version'), 'active' => $slug === $current, 'broken' => $t->errors() ? $t->errors()->get_error_message() : ''];
	}
	$missing = [];
	foreach ((array) get_option('active_plugins', []) as $file) {
		if (!file_exists(WP_PLUGIN_DIR . '/' . $file)) {
			$missing[] = (string) $file;
		}
	}
	$options = [];
	foreach ($names as $n) {
		$v = get_option($n, null);
		if ($v !== null && is_scalar($v)) {
			$options[$n] = (string) $v;
		}
	}
	global $wp_version;
	return ['core' => $wp_version, 'plugins' => array_values(aip_plugins()), 'themes' => $themes, 'stylesheet' => $current, 'active_missing' => $missing, 'options' => (object) $options];
}

if ($aip_mode === 'observe') {
	$names = json_decode((string) getenv('AIP_CODE_OPTIONS'), true);
	aip_out(aip_observe(is_array($names) ? $names : []), 0);
}

$done = [];
$fail = function (string $msg) use (&$done) {
	aip_out(['error' => $msg, 'step' => $GLOBALS['aip_step'], 'done' => $done], 1);
};
$plugins = aip_plugins();
$fileOf = function (string $folder) use (&$plugins, $fail) {
	if (!isset($plugins[$folder])) {
		$fail("plugin $folder: no plugin found in wp-content/plugins/$folder");
	}
	return $plugins[$folder]['file'];
};

foreach ((array) ($aip_input['deactivate'] ?? []) as $folder) {
	$GLOBALS['aip_step'] = "deactivating plugin $folder";
	// A folder that is gone is deactivated by its main file as recorded.
	$files = [];
	foreach ((array) get_option('active_plugins', []) as $f) {
		if ($f === $folder || strpos($f, $folder . '/') === 0) {
			$files[] = $f;
		}
	}
	if ($files) {
		deactivate_plugins($files, false);
		$done[] = "deactivated $folder";
	}
}

$theme = (string) ($aip_input['theme'] ?? '');
if ($theme !== '' && $theme !== get_stylesheet()) {
	$GLOBALS['aip_step'] = "switching to theme $theme";
	$t = wp_get_theme($theme);
	if (!$t->exists()) {
		$fail("theme $theme: not found in wp-content/themes");
	}
	if ($t->errors()) {
		$fail("theme $theme: " . $t->errors()->get_error_message());
	}
	switch_theme($theme);
	$done[] = "switched to theme $theme";
}

foreach ((array) ($aip_input['activate'] ?? []) as $folder) {
	$GLOBALS['aip_step'] = "activating plugin $folder";
	$file = $fileOf($folder);
	if (is_plugin_active($file)) {
		continue;
	}
	// Runs the plugin's activation hook; output or a WP_Error fails it, a
	// fatal error ends PHP (reported by the shutdown function above).
	$r = activate_plugin($file, '', false, false);
	if (is_wp_error($r)) {
		$msg = $r->get_error_message();
		$data = $r->get_error_data();
		if (is_string($data) && trim(wp_strip_all_tags($data)) !== '') {
			$msg .= ' Output: ' . substr(trim(wp_strip_all_tags($data)), 0, 500);
		}
		$fail("activating plugin $folder: " . wp_strip_all_tags($msg));
	}
	$done[] = "activated $folder";
}

global $wp_rewrite;
$permalinks = false;
foreach ((array) ($aip_input['options'] ?? []) as $name => $value) {
	$GLOBALS['aip_step'] = "setting option $name";
	$value = (string) $value;
	if ((string) get_option($name) === $value) {
		continue;
	}
	if ($name === 'permalink_structure') {
		$wp_rewrite->set_permalink_structure($value);
		$permalinks = true;
	} else {
		update_option($name, $value);
	}
	$done[] = "set option $name";
}
if ($permalinks) {
	$GLOBALS['aip_step'] = 'flushing rewrite rules';
	flush_rewrite_rules(false);
}
aip_out(['ok' => true, 'done' => $done], 0);
