<?php
// Imports and exports a site's content as WXR, run by the aipress shard
// through the PHP CLI as the site's own Unix user, in the site's own
// context (its wp-config.php, database and wp-content).
//
// AIP_WXR_MODE=export prints WordPress's own export (export_wp(), what
// Tools → Export downloads) of all content to stdout.
//
// AIP_WXR_MODE=import reads records from stdin, one JSON object a line, as
// the shard's Go side (package wxr) made them from a WXR file it parsed and
// checked: {"t":"author"|"term"|"item", ...}; an attachment item that was
// downloaded carries its bytes ("file_b64") and name ("file_name"). They
// are inserted with WordPress's own API following the rules of the
// WordPress importer plugin (wordpress-importer's WP_Import: authors mapped
// to users by login — created when missing —, terms by slug, posts skipped
// when a post of the type with the same title and date exists, parents,
// featured images and menu items remapped to the new IDs, attachment URLs
// in contents rewritten). The last line of stdout is one JSON object with
// the counts and the failures; on a fatal error it has "error".
error_reporting(E_ALL & ~E_DEPRECATED & ~E_NOTICE & ~E_WARNING & ~E_USER_DEPRECATED & ~E_USER_NOTICE & ~E_USER_WARNING);
$aip_docroot = getenv('AIP_DOCROOT');
$aip_host = getenv('AIP_HOST');
$aip_mode = getenv('AIP_WXR_MODE');
if (!$aip_docroot || !$aip_host || !in_array($aip_mode, ['import', 'export'], true)) {
	fwrite(STDERR, "missing AIP_DOCROOT, AIP_HOST or AIP_WXR_MODE\n");
	exit(2);
}
$GLOBALS['aip_step'] = 'loading WordPress';
$GLOBALS['aip_done'] = $aip_mode === 'export';
register_shutdown_function(function () {
	if ($GLOBALS['aip_done']) {
		return;
	}
	$e = error_get_last();
	$msg = $e ? sprintf('PHP error: %s in %s on line %d', $e['message'], $e['file'], $e['line']) : 'PHP stopped (exit or die)';
	echo "\n", json_encode(['error' => $GLOBALS['aip_step'] . ': ' . $msg], JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE), "\n";
});
$_SERVER['HTTP_HOST'] = $aip_host;
$_SERVER['DOCUMENT_ROOT'] = $aip_docroot;
$_SERVER['SERVER_NAME'] = preg_replace('/:.*/', '', $aip_host);
$_SERVER['REQUEST_URI'] = '/wp-admin/admin.php?import=wordpress';
$_SERVER['REQUEST_METHOD'] = 'GET';
$_SERVER['SERVER_PROTOCOL'] = 'HTTP/1.1';
$_SERVER['SERVER_PORT'] = '80';
chdir($aip_docroot);
define('WP_DISABLE_FATAL_ERROR_HANDLER', true);
// As the importer: WP_IMPORTING tells plugins, and core, an import runs.
define('WP_IMPORTING', true);
require $aip_docroot . '/wp-load.php';
// No HTTP from WordPress: attachments were fetched by the shard.
add_filter('pre_http_request', function () { return new WP_Error('aipress_offline', 'no HTTP during an import or export'); }, 1);

// Act as the site's first administrator, as an admin runs the importer
// (unfiltered_html: contents are stored as exported).
$admins = get_users(['role' => 'administrator', 'orderby' => 'ID', 'order' => 'ASC', 'number' => 1, 'fields' => 'ID']);
$admin = $admins ? (int) $admins[0] : 0;
wp_set_current_user($admin);

if ($aip_mode === 'export') {
	require_once ABSPATH . 'wp-admin/includes/export.php';
	export_wp(['content' => 'all']);
	exit(0);
}

require_once ABSPATH . 'wp-admin/includes/post.php';
require_once ABSPATH . 'wp-admin/includes/comment.php';
require_once ABSPATH . 'wp-admin/includes/taxonomy.php';
require_once ABSPATH . 'wp-admin/includes/image.php';
require_once ABSPATH . 'wp-admin/includes/file.php';
require_once ABSPATH . 'wp-admin/includes/media.php';
wp_defer_term_counting(true);
wp_defer_comment_counting(true);
wp_suspend_cache_invalidation(true);

$r = ['authors' => 0, 'users_created' => 0, 'terms' => 0, 'posts' => 0, 'posts_by_type' => [], 'skipped' => 0, 'comments' => 0,
	'menu_items' => 0, 'attachments' => 0, 'failures' => [], 'failures_total' => 0];
$fail = function (string $what) use (&$r) {
	$r['failures_total']++;
	if (count($r['failures']) < 200) {
		$r['failures'][] = $what;
	}
};
$author_map = [];   // login → user ID
$author_ids = [];   // WXR author_id → user ID
$term_map = [];     // WXR term_id → term ID
$post_map = [];     // WXR post_id → post ID
$comment_map = [];
$orphans = [];      // post ID → WXR parent ID
$featured = [];     // post ID → WXR attachment ID
$url_remap = [];    // old attachment URL → new
$menu_items = [];   // deferred: every post must be in first
$menu_map = [];
$pending_terms = [];

$author_of = function (string $login) use (&$author_map, $admin) {
	return $author_map[$login] ?? $admin;
};
$new_menus = [];    // menus this import made
$insert_term = function (array $t) use (&$term_map, &$r, $fail, &$new_menus) {
	$tax = (string) $t['taxonomy'];
	if (!taxonomy_exists($tax)) {
		$fail(sprintf('term %s: taxonomy %s does not exist here', $t['slug'], $tax));
		return;
	}
	$id = term_exists((string) $t['slug'], $tax);
	if ($id) {
		$term_map[(int) ($t['id'] ?? 0)] = (int) (is_array($id) ? $id['term_id'] : $id);
		return;
	}
	$parent = 0;
	if (!empty($t['parent'])) {
		$p = term_exists((string) $t['parent'], $tax);
		$parent = $p ? (int) (is_array($p) ? $p['term_id'] : $p) : 0;
	}
	$res = wp_insert_term(wp_slash((string) $t['name']), $tax, wp_slash(['slug' => (string) $t['slug'], 'description' => (string) ($t['description'] ?? ''), 'parent' => $parent]));
	if (is_wp_error($res)) {
		$fail(sprintf('term %s (%s): %s', $t['slug'], $tax, $res->get_error_message()));
		return;
	}
	$term_map[(int) ($t['id'] ?? 0)] = (int) $res['term_id'];
	if ($tax === 'nav_menu') {
		$new_menus[(int) $res['term_id']] = true;
	}
	foreach ((array) ($t['meta'] ?? []) as $m) {
		add_term_meta($res['term_id'], wp_slash($m['key']), wp_slash_strings_only(maybe_unserialize($m['value'])));
	}
	$r['terms']++;
};

$GLOBALS['aip_step'] = 'reading records';
while (($line = fgets(STDIN)) !== false) {
	$rec = json_decode($line, true);
	if (!is_array($rec)) {
		continue;
	}
	switch ($rec['t'] ?? '') {
	case 'author':
		$GLOBALS['aip_step'] = 'author ' . $rec['login'];
		$r['authors']++;
		$login = sanitize_user((string) $rec['login'], true);
		$u = get_user_by('login', $login);
		if ($u) {
			$author_map[(string) $rec['login']] = $u->ID;
			$author_ids[(int) ($rec['id'] ?? 0)] = $u->ID;
			break;
		}
		$id = wp_insert_user(wp_slash(['user_login' => $login, 'user_pass' => wp_generate_password(), 'user_email' => (string) $rec['email'],
			'display_name' => (string) $rec['display_name'], 'first_name' => (string) $rec['first_name'], 'last_name' => (string) $rec['last_name']]));
		if (is_wp_error($id)) {
			$fail(sprintf('author %s: %s (their posts go to the administrator)', $rec['login'], $id->get_error_message()));
			break;
		}
		$author_map[(string) $rec['login']] = $id;
		$author_ids[(int) ($rec['id'] ?? 0)] = $id;
		$r['users_created']++;
		break;
	case 'term':
		$GLOBALS['aip_step'] = 'term ' . $rec['slug'];
		// A child may come before its parent: retried at the first item.
		if (!empty($rec['parent']) && !term_exists((string) $rec['parent'], (string) $rec['taxonomy'])) {
			$pending_terms[] = $rec;
			break;
		}
		$insert_term($rec);
		break;
	case 'item':
		foreach ($pending_terms as $t) {
			$insert_term($t);
		}
		$pending_terms = [];
		$GLOBALS['aip_step'] = sprintf('%s %d', $rec['type'], $rec['id']);
		$type = (string) $rec['type'];
		if (!post_type_exists($type)) {
			$fail(sprintf('%s %d "%s": post type %s does not exist here', $type, $rec['id'], $rec['title'], $type));
			break;
		}
		if ($rec['status'] === 'auto-draft' || isset($post_map[(int) $rec['id']])) {
			break;
		}
		if ($type === 'nav_menu_item') {
			$menu_items[] = $rec;
			break;
		}
		// post_exists unslashes what it is given, as wp_insert_post does.
		$exists = post_exists(wp_slash((string) $rec['title']), '', (string) $rec['date'], $type);
		if ($exists && get_post_type($exists) === $type) {
			$post_map[(int) $rec['id']] = (int) $exists;
			$r['skipped']++;
			break;
		}
		$parent = 0;
		if ($rec['parent']) {
			if (isset($post_map[(int) $rec['parent']])) {
				$parent = $post_map[(int) $rec['parent']];
			}
		}
		$data = ['import_id' => (int) $rec['id'], 'post_author' => $author_of((string) $rec['creator']), 'post_date' => $rec['date'],
			'post_date_gmt' => $rec['date_gmt'], 'post_content' => $rec['content'], 'post_excerpt' => $rec['excerpt'], 'post_title' => $rec['title'],
			'post_status' => $rec['status'], 'post_name' => $rec['name'], 'comment_status' => $rec['comment_status'], 'ping_status' => $rec['ping_status'],
			'guid' => $rec['guid'], 'post_parent' => $parent, 'menu_order' => (int) $rec['menu_order'], 'post_type' => $type, 'post_password' => $rec['password']];
		if ($type === 'attachment') {
			if (!isset($rec['file_b64'])) {
				break; // not fetched: the shard reported why
			}
			$upload = wp_upload_bits((string) $rec['file_name'], null, base64_decode((string) $rec['file_b64']), (string) $rec['date']);
			unset($rec['file_b64']);
			if (!empty($upload['error'])) {
				$fail(sprintf('attachment %d (%s): %s', $rec['id'], $rec['attachment_url'], $upload['error']));
				break;
			}
			$ft = wp_check_filetype($upload['file']);
			$data['post_mime_type'] = $ft['type'];
			$data['guid'] = $upload['url'];
			$id = wp_insert_attachment(wp_slash($data), $upload['file'], 0, true);
			if (is_wp_error($id)) {
				@unlink($upload['file']);
				$fail(sprintf('attachment %d: %s', $rec['id'], $id->get_error_message()));
				break;
			}
			wp_update_attachment_metadata($id, wp_generate_attachment_metadata($id, $upload['file']));
			$url_remap[(string) $rec['attachment_url']] = $upload['url'];
			// Resized images (pic-300x200.jpg) are remapped by their stub, as
			// the plugin does: pic → the new file's name without extension.
			if (strpos((string) $ft['type'], 'image/') === 0) {
				$old = pathinfo((string) $rec['attachment_url']);
				$new = pathinfo($upload['url']);
				if (!empty($old['filename']) && !empty($new['filename'])) {
					$url_remap[$old['dirname'] . '/' . $old['filename']] = $new['dirname'] . '/' . $new['filename'];
				}
			}
			if ($rec['guid'] !== '' && $rec['guid'] !== $rec['attachment_url']) {
				$url_remap[(string) $rec['guid']] = $upload['url'];
			}
			$r['attachments']++;
		} else {
			$id = wp_insert_post(wp_slash($data), true);
			if (is_wp_error($id)) {
				$fail(sprintf('%s %d "%s": %s', $type, $rec['id'], $rec['title'], $id->get_error_message()));
				break;
			}
			if ($rec['sticky']) {
				stick_post($id);
			}
		}
		$post_map[(int) $rec['id']] = (int) $id;
		if ($rec['parent'] && !$parent) {
			$orphans[(int) $id] = (int) $rec['parent'];
		}
		$r['posts']++;
		$r['posts_by_type'][$type] = ($r['posts_by_type'][$type] ?? 0) + 1;

		$by_tax = [];
		foreach ((array) ($rec['terms'] ?? []) as $t) {
			$tax = $t['taxonomy'] === 'tag' ? 'post_tag' : (string) $t['taxonomy'];
			if (!taxonomy_exists($tax)) {
				continue;
			}
			$tid = term_exists((string) $t['slug'], $tax);
			if (!$tid) {
				$tid = wp_insert_term(wp_slash((string) $t['name']), $tax, ['slug' => (string) $t['slug']]);
				if (is_wp_error($tid)) {
					$fail(sprintf('term %s (%s) of %s %d: %s', $t['slug'], $tax, $type, $rec['id'], $tid->get_error_message()));
					continue;
				}
				$r['terms']++;
			}
			$by_tax[$tax][] = (int) (is_array($tid) ? $tid['term_id'] : $tid);
		}
		foreach ($by_tax as $tax => $ids) {
			$tt = wp_set_post_terms($id, $ids, $tax);
			if (is_wp_error($tt)) {
				$fail(sprintf('terms of %s %d: %s', $type, $rec['id'], $tt->get_error_message()));
			}
		}

		$comments = (array) ($rec['comments'] ?? []);
		usort($comments, function ($a, $b) { return $a['id'] <=> $b['id']; });
		foreach ($comments as $c) {
			if (comment_exists($c['author'], $c['date'])) {
				continue;
			}
			$user = $author_ids[(int) $c['user_id']] ?? 0;
			$cid = wp_insert_comment(wp_slash(['comment_post_ID' => $id, 'comment_author' => $c['author'], 'comment_author_email' => $c['author_email'],
				'comment_author_IP' => $c['author_ip'], 'comment_author_url' => $c['author_url'], 'comment_date' => $c['date'],
				'comment_date_gmt' => $c['date_gmt'], 'comment_content' => $c['content'], 'comment_approved' => $c['approved'],
				'comment_type' => $c['type'], 'comment_parent' => $comment_map[(int) $c['parent']] ?? 0, 'user_id' => $user]));
			if (!$cid) {
				$fail(sprintf('comment %d of %s %d: not inserted', $c['id'], $type, $rec['id']));
				continue;
			}
			$comment_map[(int) $c['id']] = $cid;
			foreach ((array) ($c['meta'] ?? []) as $m) {
				add_comment_meta($cid, wp_slash($m['key']), wp_slash_strings_only(maybe_unserialize($m['value'])));
			}
			$r['comments']++;
		}

		foreach ((array) ($rec['meta'] ?? []) as $m) {
			$key = (string) $m['key'];
			if ($key === '' || $key === '_edit_lock' || ($type === 'attachment' && in_array($key, ['_wp_attached_file', '_wp_attachment_metadata'], true))) {
				continue;
			}
			$v = maybe_unserialize($m['value']);
			if ($key === '_edit_last') {
				$v = $admin;
			}
			add_post_meta($id, wp_slash($key), wp_slash_strings_only($v));
			if ($key === '_thumbnail_id') {
				$featured[$id] = (int) $v;
			}
		}
		break;
	}
}

$GLOBALS['aip_step'] = 'menu items';
foreach ($menu_items as $rec) {
	$menu = '';
	foreach ((array) ($rec['terms'] ?? []) as $t) {
		if ($t['taxonomy'] === 'nav_menu') {
			$menu = (string) $t['slug'];
		}
	}
	$mid = $menu !== '' ? term_exists($menu, 'nav_menu') : 0;
	if (!$mid) {
		$fail(sprintf('menu item %d: no menu', $rec['id']));
		continue;
	}
	$mid = (int) (is_array($mid) ? $mid['term_id'] : $mid);
	// A menu the site had before this import keeps its items: running
	// an import again does not double them (the plugin would).
	if (!isset($new_menus[$mid]) && wp_get_nav_menu_items($mid, ['post_status' => 'any'])) {
		$r['skipped']++;
		continue;
	}
	$meta = [];
	foreach ((array) ($rec['meta'] ?? []) as $m) {
		$meta[$m['key']] = $m['value'];
	}
	$itype = $meta['_menu_item_type'] ?? '';
	$oid = (int) ($meta['_menu_item_object_id'] ?? 0);
	if ($itype === 'taxonomy' && isset($term_map[$oid])) {
		$oid = $term_map[$oid];
	} elseif ($itype === 'post_type' && isset($post_map[$oid])) {
		$oid = $post_map[$oid];
	} elseif ($itype !== 'custom') {
		$fail(sprintf('menu item %d: what it links to (%s %d) was not imported', $rec['id'], $itype, $oid));
		continue;
	}
	$parent = (int) ($meta['_menu_item_menu_item_parent'] ?? 0);
	$parent = $parent ? ($menu_map[$parent] ?? 0) : 0;
	$classes = maybe_unserialize($meta['_menu_item_classes'] ?? '');
	$args = ['menu-item-object-id' => $oid, 'menu-item-object' => $meta['_menu_item_object'] ?? '', 'menu-item-parent-id' => $parent,
		'menu-item-position' => (int) $rec['menu_order'], 'menu-item-type' => $itype, 'menu-item-title' => $rec['title'],
		'menu-item-url' => $meta['_menu_item_url'] ?? '', 'menu-item-description' => $rec['content'], 'menu-item-attr-title' => $rec['excerpt'],
		'menu-item-target' => $meta['_menu_item_target'] ?? '', 'menu-item-classes' => is_array($classes) ? implode(' ', $classes) : (string) $classes,
		'menu-item-xfn' => $meta['_menu_item_xfn'] ?? '', 'menu-item-status' => $rec['status']];
	$id = wp_update_nav_menu_item($mid, 0, wp_slash($args));
	if (is_wp_error($id) || !$id) {
		$fail(sprintf('menu item %d: %s', $rec['id'], is_wp_error($id) ? $id->get_error_message() : 'not inserted'));
		continue;
	}
	$menu_map[(int) $rec['id']] = $id;
	$post_map[(int) $rec['id']] = $id;
	$r['menu_items']++;
	$r['posts']++;
	$r['posts_by_type']['nav_menu_item'] = ($r['posts_by_type']['nav_menu_item'] ?? 0) + 1;
}

global $wpdb;
$GLOBALS['aip_step'] = 'parents';
foreach ($orphans as $id => $old) {
	if (isset($post_map[$old])) {
		$wpdb->update($wpdb->posts, ['post_parent' => $post_map[$old]], ['ID' => $id], '%d', '%d');
		clean_post_cache($id);
	}
}
$GLOBALS['aip_step'] = 'attachment URLs';
uksort($url_remap, function ($a, $b) { return strlen($b) - strlen($a); });
foreach ($url_remap as $from => $to) {
	if ($from === '' || $from === $to) {
		continue;
	}
	$wpdb->query($wpdb->prepare("UPDATE {$wpdb->posts} SET post_content = REPLACE(post_content, %s, %s)", $from, $to));
	$wpdb->query($wpdb->prepare("UPDATE {$wpdb->postmeta} SET meta_value = REPLACE(meta_value, %s, %s) WHERE meta_key = 'enclosure'", $from, $to));
}
$GLOBALS['aip_step'] = 'featured images';
foreach ($featured as $id => $old) {
	if (isset($post_map[$old])) {
		update_post_meta($id, '_thumbnail_id', $post_map[$old]);
	} else {
		delete_post_meta($id, '_thumbnail_id');
	}
}
$GLOBALS['aip_step'] = 'counting';
wp_suspend_cache_invalidation(false);
wp_defer_term_counting(false);
wp_defer_comment_counting(false);
wp_cache_flush();
$GLOBALS['aip_done'] = true;
$r['ok'] = true;
$r['posts_by_type'] = (object) $r['posts_by_type'];
echo "\n", json_encode($r, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE), "\n";
