<?php
/**
 * Plugin Name: AIPress storage
 * Description: Refuses an upload that would not fit the site's disk limit, with a clear message. Installed and updated by the platform.
 * Version: 1
 */
// Must-use plugin, shared by every site of a shard (the file in wp-content/
// mu-plugins is a root-owned symlink to one copy). The site's uploads, tmp/
// and logs/ live on a volume of its own whose size the kernel enforces; a
// full volume makes WordPress fail with "Failed to write file to disk" or
// "Could not write file". This plugin says why instead. It reads one
// constant the platform writes into wp-config.php when the site has a
// volume:
//   AIPRESS_DISK_LIMIT_MB  the site's disk limit in MB
// Without it (no volume: the limit is not enforced) it does nothing.
//
// What may still be written is what the filesystem grants this (non-root)
// process: disk_free_space() on the uploads directory. An upload arrives in
// tmp/ (on the same volume) before WordPress copies it into uploads, so it
// fits when its size is at most what is free then (the upload prefilters).
// A raw-body upload to the REST API (POST /wp/v2/media) is held by PHP in
// tmp/, written again to a temporary file by WordPress and then copied:
// it is refused before WordPress starts when twice its size is not free,
// or when PHP could not even hold it (an empty body).

defined('ABSPATH') || exit;

final class AIPress_Storage {
	/**
	 * The message for writing $need bytes (a file of $file bytes) when $free
	 * bytes are free, or '' when it fits.
	 */
	public static function refusal($need, $free, $limit_mb, $file = null) {
		if ($free !== false && $need <= $free) {
			return '';
		}
		$used = $free === false ? $limit_mb : max(0, $limit_mb - (int) floor($free / 1048576));
		$file = $file === null ? $need : $file;
		return sprintf(
			/* translators: 1: MB used, 2: MB limit, 3: MB of the upload */
			__("This site's storage is full: %1\$d MB of %2\$d MB used, and this file needs %3\$d MB. Delete media you no longer need, or move the site to a plan with more storage."),
			$used, $limit_mb, max(1, (int) ceil($file / 1048576))
		);
	}

	/** What this process may still write on the site's volume, or false. */
	private static function free() {
		$dir = wp_upload_dir(null, false);
		return @disk_free_space(!empty($dir['basedir']) && is_dir($dir['basedir']) ? $dir['basedir'] : WP_CONTENT_DIR);
	}

	public static function rest_pre_dispatch($result, $server, $request) {
		if ($result !== null || !defined('AIPRESS_DISK_LIMIT_MB') || $request->get_method() !== 'POST'
			|| !preg_match('#^/wp/v2/media/?$#', $request->get_route())) {
			return $result;
		}
		$len = isset($_SERVER['CONTENT_LENGTH']) ? (int) $_SERVER['CONTENT_LENGTH'] : 0;
		$free = self::free();
		if ($len <= 0 || $free === false || !empty($request->get_file_params())) {
			return $result; // multipart: the upload prefilter decides
		}
		$body = $request->get_body();
		$need = ($body === '' || $body === null) ? $len : 2 * $len;
		$msg = self::refusal($need, $free, (int) AIPRESS_DISK_LIMIT_MB, $len);
		if ($msg === '') {
			return $result;
		}
		return new WP_Error('aipress_storage_full', $msg, array('status' => 507));
	}

	public static function prefilter($file) {
		if (!defined('AIPRESS_DISK_LIMIT_MB') || !is_array($file)) {
			return $file;
		}
		$limit = (int) AIPRESS_DISK_LIMIT_MB;
		$free = self::free();
		$size = isset($file['size']) ? (int) $file['size'] : 0;
		// PHP could not even store the upload in tmp/: the volume is full.
		if (isset($file['error']) && (int) $file['error'] === UPLOAD_ERR_CANT_WRITE) {
			$file['error'] = self::refusal(PHP_INT_MAX, 0, $limit, $size);
			return $file;
		}
		if (!empty($file['error'])) {
			return $file;
		}
		$msg = self::refusal($size, $free, $limit);
		if ($msg !== '') {
			$file['error'] = $msg;
		}
		return $file;
	}
}

add_filter('wp_handle_upload_prefilter', array('AIPress_Storage', 'prefilter'));
add_filter('wp_handle_sideload_prefilter', array('AIPress_Storage', 'prefilter'));
add_filter('rest_pre_dispatch', array('AIPress_Storage', 'rest_pre_dispatch'), 10, 3);
