<?php
/**
 * Plugin Name: AIPress sign-in links
 * Description: Signs the site's administrator in from a one-time link the platform made (the portal's "Open wp-admin"). Installed and updated by the platform.
 * Version: 1
 */
// Must-use plugin, shared by every site of a shard (the file in wp-content/
// mu-plugins is a root-owned symlink to one copy). It reads two constants
// the platform writes into wp-config.php:
//   AIPRESS_SITE_UID   the site's UID
//   AIPRESS_LOGIN_KEY  the site's login key (hex), derived by the control
//                      plane from its platform secret and the site's UID
// A request with ?aipress_login=<token> (POST /v1/sites/{name}/login-link)
// is checked here exactly as Go's internal/loginlink.Verify checks it:
//   token = base64url(payload) "." base64url(HMAC-SHA256(key, base64url(payload)))
//   payload = {"v":1,"site":uid,"user":login,"exp":unix,"nonce":hex[,"tls":true]}
// A token with "tls" was made for an https:// link (the site redirects to
// HTTPS and the edge serves it): it is refused on a request that did not
// arrive over TLS (is_ssl(): the edge sets HTTPS=on for TLS requests and
// replaces any X-Forwarded-Proto a visitor sends).
// then the nonce is recorded in this site's own options table (INSERT
// IGNORE on the unique option_name: two requests with one token cannot both
// win), so a link works once. A good token signs its user in (it must be an
// administrator) and redirects to wp-admin without the token; anything else
// gets a plain 403 page. Without the constants every link is refused.

defined('ABSPATH') || exit;

final class AIPress_Login {
	const PARAM = 'aipress_login';
	const USED = '_aipress_login_used_';

	/**
	 * Checks $token against the site's key (hex) and UID at Unix time $now,
	 * for a request that arrived over TLS or not ($tls): the claims (an
	 * array) when it is good, else the reason (a string: malformed,
	 * signature, site, expired, tls).
	 */
	public static function verify($token, $key_hex, $uid, $now, $tls) {
		if (!is_string($token) || strlen($token) > 2048 || !is_string($key_hex) || !ctype_xdigit($key_hex) || strlen($key_hex) % 2 !== 0) {
			return 'malformed';
		}
		$parts = explode('.', $token);
		if (count($parts) !== 2) {
			return 'malformed';
		}
		$sig = self::b64($parts[1]);
		if ($sig === false) {
			return 'malformed';
		}
		if (!hash_equals(hash_hmac('sha256', $parts[0], hex2bin($key_hex), true), $sig)) {
			return 'signature';
		}
		$json = self::b64($parts[0]);
		$c = $json === false ? null : json_decode($json, true);
		if (!is_array($c) || ($c['v'] ?? null) !== 1 || !is_string($c['site'] ?? null) || !is_int($c['exp'] ?? null)
			|| !is_string($c['user'] ?? null) || $c['user'] === ''
			|| !is_string($c['nonce'] ?? null) || !preg_match('/^[0-9a-f]{16,64}$/', $c['nonce'])
			|| !is_bool($c['tls'] ?? false)) {
			return 'malformed';
		}
		if (!hash_equals($uid, $c['site'])) {
			return 'site';
		}
		if ($now >= $c['exp']) {
			return 'expired';
		}
		if (($c['tls'] ?? false) && !$tls) {
			return 'tls';
		}
		return $c;
	}

	private static function b64($s) {
		if ($s === '' || !preg_match('/^[A-Za-z0-9_-]+$/', $s)) {
			return false;
		}
		$s = strtr($s, '-_', '+/');
		return base64_decode(str_pad($s, strlen($s) + (4 - strlen($s) % 4) % 4, '='), true);
	}

	/** Handles a request that carries a token (on init). */
	public static function handle() {
		if (!isset($_GET[self::PARAM])) {
			return;
		}
		if (!defined('AIPRESS_LOGIN_KEY') || !defined('AIPRESS_SITE_UID')) {
			self::refuse('Sign-in links are not set up for this site.');
		}
		$c = self::verify(wp_unslash($_GET[self::PARAM]), AIPRESS_LOGIN_KEY, AIPRESS_SITE_UID, time(), is_ssl());
		if (!is_array($c)) {
			self::refuse($c === 'expired'
				? 'This sign-in link has expired. Ask the portal for a new one.'
				: ($c === 'tls'
					? 'This sign-in link works over HTTPS only. Ask the portal for a new one and open it as given.'
					: 'This sign-in link is not valid for this site.'));
		}
		$user = get_user_by('login', $c['user']);
		if (!$user || !user_can($user, 'manage_options')) {
			self::refuse('The user this link signs in is not an administrator of this site.');
		}
		if (!self::use_nonce($c['nonce'], $c['exp'])) {
			self::refuse('This sign-in link was already used. Ask the portal for a new one.');
		}
		wp_set_current_user($user->ID);
		wp_set_auth_cookie($user->ID, false, is_ssl());
		do_action('wp_login', $user->user_login, $user);
		nocache_headers();
		header('Referrer-Policy: no-referrer');
		wp_safe_redirect(admin_url());
		exit;
	}

	/**
	 * Records $nonce as used until $exp; false when it already was. Nonces
	 * of links that expired more than a minute ago are forgotten first
	 * (their tokens fail the expiry check anyway).
	 */
	private static function use_nonce($nonce, $exp) {
		global $wpdb;
		$wpdb->query($wpdb->prepare(
			"DELETE FROM {$wpdb->options} WHERE option_name LIKE %s AND CAST(option_value AS UNSIGNED) < %d",
			$wpdb->esc_like(self::USED) . '%', time() - 60
		));
		$n = $wpdb->query($wpdb->prepare(
			"INSERT IGNORE INTO {$wpdb->options} (option_name, option_value, autoload) VALUES (%s, %s, 'no')",
			self::USED . $nonce, (string) $exp
		));
		return $n === 1;
	}

	private static function refuse($msg) {
		status_header(403);
		nocache_headers();
		header('Referrer-Policy: no-referrer');
		header('Content-Type: text/html; charset=utf-8');
		echo '<!DOCTYPE html><html><head><meta charset="utf-8"><meta name="robots" content="noindex">'
			. '<title>Sign-in link refused</title></head><body><h1>Sign-in link refused</h1><p>'
			. esc_html($msg) . '</p><p><a href="' . esc_url(wp_login_url()) . '">Sign in with a password</a></p></body></html>';
		exit;
	}
}

if (function_exists('add_action')) {
	add_action('init', array('AIPress_Login', 'handle'), 0);
}
