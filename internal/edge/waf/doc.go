// Package waf is the edge's web application firewall: the OWASP Core Rule
// Set (CRS 4.25, from github.com/corazawaf/coraza-coreruleset) on the Coraza
// engine (github.com/corazawaf/coraza/v3), as an edge.Middleware. Only this
// package imports Coraza.
//
// # Modes and paranoia
//
// Each route's Options.WAFMode says what happens: "block" (the default)
// answers requests the CRS anomaly scoring denies with a 403 page (an
// *edge.HTTPError, so the edge's page shows the request id) and never calls
// the next handler; "detect" inspects and logs but lets everything through;
// "off" skips the WAF. Options.WAFParanoia (1–4) picks the CRS paranoia
// level, used for both blocking and detection. One Coraza WAF is built per
// level on first use and cached (about 0.1–0.3 s each; the time is
// logged). The engine is always On; in detect mode the middleware ignores
// the interruption, so one rule set serves both modes.
//
// Every matched rule is logged at warn (site, request id, rule id, message,
// matched data, site and rule paranoia, action block|detect|pass, client)
// and its id appended to edge.InfoFrom(ctx).WAFRules; a blocked request sets
// WAFBlocked. The client is r.RemoteAddr.
//
// # Bodies
//
// At most Config.BodyLimit bytes (default 128 KiB) of a request body are
// read, into memory, and inspected (SecRequestBodyLimitAction
// ProcessPartial); the bytes read are then put back in front of the unread
// rest, so the next handler reads the body intact and an upload of any
// size streams through without being held. What lies beyond the limit is
// not inspected. Multipart file contents are not visible to CRS rules
// (Coraza keeps them out of ARGS; up to the limit they are spooled to a
// temporary file that is removed with the transaction); file names are. A
// body that fails to parse is refused (400) unless it was cut at the limit.
// Responses are not inspected.
//
// # WordPress exclusions
//
// CRS 4 moved its WordPress exclusions out of the core rules into the
// wordpress-rule-exclusions plugin (github.com/coreruleset). The plugin is
// a set of SecLang files meant to be copied next to the CRS and Included
// before it; neither coraza-coreruleset (which embeds only the CRS rules,
// crs-setup.conf.example and coraza.conf-recommended, no plugins) nor any
// other Go module ships it, and Coraza users load it by downloading the
// files and Including them from disk. So rules/wordpress.conf is our own
// file, embedded, written for this platform in the plugin's manner
// (tx.crs_exclusions_wordpress switch, runtime ctl:ruleRemoveTargetByTag /
// ctl:ruleRemoveById per script path, loaded before the CRS). It covers:
//
//   - wp-login.php: pwd, pass1, pass2, post_password from every CRS rule
//     (passwords are only hashed); log from SQLi rules; redirect_to from
//     RFI and SSRF (a site under .localhost trips 934190).
//   - wp-admin/profile.php, user-edit.php, user-new.php: the password fields.
//   - wp-admin/*: _wp_http_referer and wp_http_referer from RFI and SSRF.
//   - wp-admin/post.php (classic editor): content and excerpt from every
//     rule, post_title from SQLi.
//   - REST API posts, pages, reusable blocks, templates, navigation (and
//     their autosaves), in both the /wp-json/wp/v2/… and ?rest_route=/wp/v2/…
//     forms: json.content and json.excerpt — block markup with its block
//     comments (<!-- wp:heading {"level":2} -->) and whatever the author
//     writes, code blocks with SQL included — from every rule; json.title
//     from SQLi.
//   - admin-ajax.php with action=heartbeat: the autosave's content, excerpt
//     and title (data[wp_autosave][…]).
//   - wp-comments-post.php: url (the commenter's site) and redirect_to from
//     RFI and SSRF, submit from RCE. The comment text stays inspected.
//   - POST /wp-json/wp/v2/media (and ?rest_route=/wp/v2/media) with a raw
//     file body (not a form, JSON or XML): the body is not inspected and the
//     content-type policy (920420) is lifted, since the body is the file.
//     Multipart uploads (async-upload.php, media-new.php) need no exclusion.
//
// All but the login, wp-admin referer and comment exclusions apply only when
// the request carries a wordpress_logged_in_ cookie (and, for the REST API,
// an X-WP-Nonce header); WordPress itself checks the nonce and the user's
// capabilities. Coraza runs a chain starter's non-disruptive actions as soon
// as the starter matches, so the ctl: actions sit on the last link of each
// chain (a test checks that an anonymous save is still blocked).
package waf
