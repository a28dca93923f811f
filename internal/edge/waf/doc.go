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
// WAFBlocked. The client is r.RemoteAddr. A refusal answers 403 with
// BlockedMessage, or 413 with TooLargeMessage for a body too large to
// inspect, or 400 for one that does not parse.
//
// # Bodies
//
// A body that is not multipart/form-data (a form, JSON, XML, anything
// else) is read into memory up to Config.BodyLimit (default 128 KiB) and
// inspected; a longer one is refused with 413 (rule 10008), so an attack
// cannot hide behind padding. A site may exclude 10008 for a path (say,
// the REST route of very long posts): there the first BodyLimit bytes are
// inspected and the rest passes uninspected (SecRequestBodyLimitAction
// ProcessPartial). A multipart/form-data body (an upload) is read whole, up
// to Config.MaxBodyBytes (the edge's 64 MiB; 413 beyond), in memory up to
// BodyLimit and beyond it in a temporary file that is removed with the
// request, and parsed whole, so every form field is inspected wherever it
// sits -- before or after a file. File contents are not visible to CRS
// rules (Coraza keeps them out of ARGS); file names are. The fields of a
// multipart body (all but its files) may total at most BodyLimit: Coraza
// reads each field into memory and runs every rule over it, so larger ones
// are refused with 413 before it parses them (rule 10009, enforced in Go,
// excludable like the others). The bytes read are then handed to the next
// handler, followed by whatever was not read, so it sees the body intact. A
// body that fails to parse is refused (400). Responses are not inspected.
//
// # JSON bodies
//
// Coraza names a JSON body's arguments json.<key> (json.a.b when nested).
// CRS rules that anchor their pattern on the whole argument name -- 943110
// and 943120, session-id parameters such as PHPSESSID -- cannot match such
// names, so rules/json.conf adds twins of them (10210, 10211) that run the
// CRS pattern, read from the embedded CRS when the rule set is built, over
// json.<name>. A form body and a JSON body carrying the same attack are
// refused alike.
//
// # Site exclusions
//
// A site's spec.waf.exclusions (edge.RouteOptions.WAFExclusions) lift one
// rule for one path, entirely or for one argument (see site.WAFExclusion):
// the owner's fix for a false positive. They are applied per request, to
// the request's Coraza transaction only (RemoveRuleByID,
// RemoveRuleTargetByID: what ctl:ruleRemoveById and
// ctl:ruleRemoveTargetById do), so the edge keeps one rule set per paranoia
// level for all its sites and a site's exclusions cost nothing to the
// others (BenchmarkExclusions). An argument exclusion removes the argument
// from ARGS, ARGS_GET, ARGS_POST and their _NAMES collections under its own
// name and as json.<name>; excluding 943110 or 943120 also lifts its JSON
// twin. LookupRule and CheckExcludable read which rules exist from the
// embedded configuration text (the API validates exclusions with them);
// set-up, initialization and the anomaly evaluation (949110) may not be
// excluded.
//
// # Events
//
// When the WAF refuses a request (or, in detect mode, would refuse it) it
// hands Config.Events one site.WAFEvent per matched rule and argument (the
// anomaly evaluation left out, at most 20 per request): time, request id,
// method, path, rule id and message, the variable matched and the argument
// it names, action and paranoia. Reporter queues them without blocking
// (bounded, with a per-site share per interval; the excess is dropped and
// counted in a log line) and sends batches every 2 s; the platform stores
// them in the control plane, where `aipress site waf events` shows them with
// a suggested exclusion.
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
