<?php
/**
 * Plugin Name: AIPress cache
 * Description: Tags every page for the AIPress edge cache and purges the edge when content changes. Installed and updated by the platform.
 * Version: 1
 */
// Must-use plugin, shared by every site of a shard (the file in wp-content/
// mu-plugins is a root-owned symlink to one copy). It reads three constants
// that the platform writes into wp-config.php:
//   AIPRESS_PURGE_URL   the edge's purge endpoint on loopback
//   AIPRESS_PURGE_KEY   this site's purge key
//   AIPRESS_PURGE_HOST  this site's host name (the edge routes by Host)
// Without them it still tags pages but sends nothing.
//
// Tags (header X-AIPress-Tags, comma-separated):
//   home       the front page and the posts page
//   post-<ID>  a singular view, and every post listed by the main query of
//              the home page, an archive or a search
//   term-<ID>  a category, tag or custom taxonomy archive
//   archive    any archive (date, author, term, post type)
//   feed       any feed
//
// Purges are collected during the request and sent once, on shutdown, before
// the response completes, so that the author's next page view is fresh.

defined('ABSPATH') || exit;

final class AIPress_Cache {
	const MAX_TAGS = 200;

	/** @var array<string,true> tags to purge */
	private static $tags = [];
	/** @var array<int,true> posts whose current terms are purged at shutdown */
	private static $posts = [];
	private static $all = false;
	private static $scheduled = false;

	/** Options whose change alters the output of (nearly) every page. */
	private static $site_options = [
		'blogname', 'blogdescription', 'permalink_structure', 'category_base', 'tag_base',
		'show_on_front', 'page_on_front', 'page_for_posts', 'posts_per_page', 'posts_per_rss',
		'rss_use_excerpt', 'sidebars_widgets', 'stylesheet', 'template', 'date_format',
		'time_format', 'start_of_week', 'timezone_string', 'gmt_offset', 'WPLANG', 'site_icon',
		'blog_public', 'home', 'siteurl', 'nav_menu_options', 'show_comments_cookies_opt_in',
		'thread_comments', 'comments_per_page', 'default_comments_page', 'comment_order',
		'comment_registration', 'require_name_email', 'close_comments_for_old_posts',
		'close_comments_days_old', 'page_comments', 'show_avatars', 'avatar_default', 'avatar_rating',
	];

	/** Post types whose change may alter every page (block themes, menus, patterns). */
	private static $site_post_types = [
		'wp_template', 'wp_template_part', 'wp_global_styles', 'wp_navigation', 'wp_block', 'nav_menu_item', 'custom_css',
	];

	public static function init() {
		// Tagging: template_redirect runs after the main query, before any
		// output (feeds are rendered after it too).
		add_action('template_redirect', [__CLASS__, 'send_tags'], PHP_INT_MAX);

		// Posts.
		add_action('transition_post_status', [__CLASS__, 'on_transition'], 10, 3);
		add_action('before_delete_post', [__CLASS__, 'on_delete_post'], 10, 1);
		add_action('set_object_terms', [__CLASS__, 'on_set_terms'], 10, 6);
		// Comments.
		add_action('wp_insert_comment', [__CLASS__, 'on_new_comment'], 10, 2);
		add_action('transition_comment_status', [__CLASS__, 'on_comment_status'], 10, 3);
		add_action('edit_comment', [__CLASS__, 'on_comment'], 10, 1);
		add_action('deleted_comment', [__CLASS__, 'on_comment'], 10, 1);
		// Terms.
		add_action('created_term', [__CLASS__, 'on_term'], 10, 3);
		add_action('edited_term', [__CLASS__, 'on_term'], 10, 3);
		add_action('delete_term', [__CLASS__, 'on_term'], 10, 3);
		// The whole site.
		foreach (['wp_update_nav_menu', 'wp_create_nav_menu', 'wp_delete_nav_menu', 'switch_theme', 'customize_save_after'] as $hook) {
			add_action($hook, [__CLASS__, 'purge_all'], 10, 0);
		}
		add_action('updated_option', [__CLASS__, 'on_option'], 10, 1);
		add_action('deleted_option', [__CLASS__, 'on_option'], 10, 1);
		// A site's first page view adds the default (empty) widget_* and
		// theme_mods_* options; only the named options count when added.
		add_action('added_option', [__CLASS__, 'on_added_option'], 10, 1);
	}

	// ---- tagging ----

	public static function page_tags() {
		global $wp_query;
		$tags = [];
		if (is_front_page() || is_home()) {
			$tags[] = 'home';
		}
		if (is_singular()) {
			$id = get_queried_object_id();
			if ($id) {
				$tags[] = 'post-' . $id;
			}
		}
		if (is_category() || is_tag() || is_tax()) {
			$id = get_queried_object_id();
			if ($id) {
				$tags[] = 'term-' . $id;
			}
		}
		if (is_archive()) {
			$tags[] = 'archive';
		}
		if (is_feed()) {
			$tags[] = 'feed';
		}
		if ((is_home() || is_archive() || is_search() || is_feed()) && isset($wp_query->posts) && is_array($wp_query->posts)) {
			foreach ($wp_query->posts as $p) {
				$id = is_object($p) ? (int) $p->ID : (int) $p;
				if ($id > 0) {
					$tags[] = 'post-' . $id;
				}
			}
		}
		return array_slice(array_values(array_unique($tags)), 0, self::MAX_TAGS);
	}

	public static function send_tags() {
		if (headers_sent() || is_admin()) {
			return;
		}
		$tags = self::page_tags();
		if ($tags) {
			header('X-AIPress-Tags: ' . implode(', ', $tags));
		}
	}

	// ---- collecting purges ----

	private static function schedule() {
		if (!self::$scheduled) {
			self::$scheduled = true;
			add_action('shutdown', [__CLASS__, 'send'], PHP_INT_MAX);
		}
	}

	public static function purge_tags(array $tags) {
		foreach ($tags as $t) {
			self::$tags[$t] = true;
		}
		self::schedule();
	}

	public static function purge_all() {
		self::$all = true;
		self::schedule();
	}

	private static function term_tags($post_id) {
		$tags = [];
		$taxonomies = get_object_taxonomies(get_post_type($post_id));
		if (!$taxonomies) {
			return $tags;
		}
		$ids = wp_get_object_terms($post_id, $taxonomies, ['fields' => 'ids', 'update_term_meta_cache' => false]);
		if (is_wp_error($ids)) {
			return $tags;
		}
		foreach ($ids as $id) {
			$tags[] = 'term-' . (int) $id;
		}
		return $tags;
	}

	private static function purge_post($post) {
		$post = get_post($post);
		if (!$post) {
			return;
		}
		if (in_array($post->post_type, self::$site_post_types, true)) {
			self::purge_all();
			return;
		}
		if (!is_post_type_viewable($post->post_type)) {
			return;
		}
		self::$posts[(int) $post->ID] = true;
		// Terms now (a deleted post has none left at shutdown) and again at
		// shutdown (the REST API sets terms after the status changed).
		self::purge_tags(array_merge(['post-' . $post->ID, 'home', 'feed', 'archive'], self::term_tags($post->ID)));
	}

	public static function on_transition($new, $old, $post) {
		if ($new === 'publish' || $old === 'publish') {
			self::purge_post($post);
		}
	}

	public static function on_delete_post($post_id) {
		if (get_post_status($post_id) === 'publish') {
			self::purge_post($post_id);
		}
	}

	public static function on_set_terms($object_id, $terms, $tt_ids, $taxonomy, $append, $old_tt_ids) {
		$post = get_post($object_id);
		if (!$post || $post->post_status !== 'publish' || !is_post_type_viewable($post->post_type)) {
			return;
		}
		$tags = [];
		foreach (array_unique(array_merge((array) $tt_ids, (array) $old_tt_ids)) as $tt_id) {
			$term = get_term_by('term_taxonomy_id', (int) $tt_id, $taxonomy);
			if ($term && !is_wp_error($term)) {
				$tags[] = 'term-' . $term->term_id;
			}
		}
		self::purge_post($post);
		self::purge_tags($tags);
	}

	private static function purge_comment_post($comment) {
		$comment = get_comment($comment);
		if ($comment && $comment->comment_post_ID) {
			self::purge_tags(['post-' . (int) $comment->comment_post_ID, 'feed']);
		}
	}

	public static function on_new_comment($id, $comment) {
		if ($comment && (string) $comment->comment_approved === '1') {
			self::purge_comment_post($comment);
		}
	}

	public static function on_comment_status($new, $old, $comment) {
		if ($new === 'approved' || $old === 'approved') {
			self::purge_comment_post($comment);
		}
	}

	public static function on_comment($id) {
		self::purge_comment_post($id);
	}

	public static function on_term($term_id, $tt_id = 0, $taxonomy = '') {
		if ($taxonomy === 'nav_menu') {
			self::purge_all();
			return;
		}
		if ($taxonomy !== '' && !is_taxonomy_viewable($taxonomy)) {
			return;
		}
		self::purge_tags(['term-' . (int) $term_id, 'archive', 'home']);
	}

	public static function on_added_option($option) {
		if (in_array($option, self::$site_options, true)) {
			self::purge_all();
		}
	}

	public static function on_option($option) {
		if (in_array($option, self::$site_options, true)
			|| strncmp($option, 'theme_mods_', 11) === 0
			|| strncmp($option, 'widget_', 7) === 0) {
			self::purge_all();
		}
	}

	// ---- sending ----

	/** The body of the purge request, or null when there is nothing to purge. */
	public static function body() {
		if (self::$all) {
			return ['all' => true];
		}
		foreach (array_keys(self::$posts) as $id) {
			if (get_post_status($id) === 'publish') {
				foreach (self::term_tags($id) as $t) {
					self::$tags[$t] = true;
				}
			}
		}
		if (!self::$tags) {
			return null;
		}
		return ['tags' => array_keys(self::$tags)];
	}

	public static function send() {
		$body = self::body();
		self::$tags = [];
		self::$posts = [];
		self::$all = false;
		self::$scheduled = false;
		if ($body === null || !defined('AIPRESS_PURGE_URL') || !defined('AIPRESS_PURGE_KEY') || AIPRESS_PURGE_URL === '') {
			return;
		}
		// The installer runs offline; it has nothing cached to purge.
		if (defined('WP_INSTALLING') && WP_INSTALLING) {
			return;
		}
		$headers = [
			'Content-Type'        => 'application/json',
			'X-AIPress-Purge-Key' => AIPRESS_PURGE_KEY,
		];
		if (defined('AIPRESS_PURGE_HOST') && AIPRESS_PURGE_HOST !== '') {
			$headers['Host'] = AIPRESS_PURGE_HOST;
		}
		try {
			self::post($headers, $body);
		} catch (Throwable $e) {
			error_log('aipress-cache: purge failed: ' . $e->getMessage());
		}
	}

	private static function post(array $headers, array $body) {
		$resp = wp_remote_post(AIPRESS_PURGE_URL, [
			'timeout'     => 2,
			'blocking'    => true,
			'redirection' => 0,
			'headers'     => $headers,
			'body'        => wp_json_encode($body),
		]);
		if (is_wp_error($resp)) {
			error_log('aipress-cache: purge failed: ' . $resp->get_error_message());
			return;
		}
		$code = (int) wp_remote_retrieve_response_code($resp);
		if ($code !== 200) {
			error_log('aipress-cache: purge failed: HTTP ' . $code);
		}
	}
}

AIPress_Cache::init();
