package catalogtest

import (
	"fmt"
	"io/fs"
	"strings"
)

// Fixture names (see the package doc).
const (
	HelloPlugin   = "aipress-hello"
	FatalPlugin   = "aipress-fatal"
	BrokenPlugin  = "aipress-broken"
	TestTheme     = "aipress-theme"
	SlipPlugin    = "aipress-slip"
	SymlinkPlugin = "aipress-symlink"
	OutsidePlugin = "aipress-outside"
)

// HelloOption is the option aipress-hello's activation hook sets to its
// version (and its deactivation hook deletes).
const HelloOption = "aipress_hello_activated"

func pluginHeader(name, desc, version string) string {
	return fmt.Sprintf(`<?php
/**
 * Plugin Name: %s
 * Description: %s
 * Version: %s
 * Requires at least: 6.0
 * Requires PHP: 7.4
 * Author: AIPress tests
 * License: GPLv2 or later
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}
`, name, desc, version)
}

// PluginFiles returns the files of the fixture plugin slug at version
// (HelloPlugin 1.0/2.0, FatalPlugin 1.0, BrokenPlugin 1.0/2.0; any other
// version of them is accepted too and behaves like the nearest described
// one). It panics on an unknown slug.
func PluginFiles(slug, version string) map[string]string {
	marker := Marker(slug, version)
	switch slug {
	case HelloPlugin:
		return map[string]string{
			"aipress-hello.php": pluginHeader("AIPress Hello", "Test fixture: prints a marker in the footer.", version) + fmt.Sprintf(`
register_activation_hook( __FILE__, function () {
	update_option( %[1]q, %[2]q );
} );

register_deactivation_hook( __FILE__, function () {
	delete_option( %[1]q );
} );

add_action( 'wp_footer', function () {
	echo "\n<p class=\"aipress-hello\">%[3]s</p>\n";
} );
`, HelloOption, version, marker),
			"readme.txt": "=== AIPress Hello ===\nStable tag: " + version + "\n\nA test fixture.\n",
		}
	case FatalPlugin:
		return map[string]string{
			"aipress-fatal.php": pluginHeader("AIPress Fatal", "Test fixture: fatal on activation.", version) + `
register_activation_hook( __FILE__, function () {
	aipress_fatal_this_function_does_not_exist();
} );
`,
		}
	case BrokenPlugin:
		body := fmt.Sprintf(`
add_action( 'wp_footer', function () {
	echo "\n<p class=\"aipress-broken\">%s</p>\n";
} );
`, marker)
		if version != "1.0" && !strings.HasPrefix(version, "1.") {
			body = `
// Broken on purpose: every front-end page fatals.
add_action( 'template_redirect', function () {
	aipress_broken_this_function_does_not_exist();
} );
`
		}
		return map[string]string{
			"aipress-broken.php": pluginHeader("AIPress Broken", "Test fixture: 1.x works, 2.x fatals on every front-end request.", version) + body,
		}
	}
	panic("catalogtest: no fixture plugin " + slug)
}

// ThemeFiles returns the files of the fixture theme slug (TestTheme) at
// version.
func ThemeFiles(slug, version string) map[string]string {
	if slug != TestTheme {
		panic("catalogtest: no fixture theme " + slug)
	}
	return map[string]string{
		"style.css": fmt.Sprintf(`/*
Theme Name: AIPress Theme
Description: Test fixture: a classic theme that prints a marker.
Version: %s
Requires at least: 6.0
Requires PHP: 7.4
Author: AIPress tests
License: GPLv2 or later
Text Domain: aipress-theme
*/
body { font-family: sans-serif; }
`, version),
		"functions.php": `<?php
add_action( 'after_setup_theme', function () {
	add_theme_support( 'title-tag' );
} );
`,
		"index.php": fmt.Sprintf(`<?php
?><!DOCTYPE html>
<html <?php language_attributes(); ?>>
<head><meta charset="<?php bloginfo( 'charset' ); ?>"><?php wp_head(); ?></head>
<body <?php body_class(); ?>>
<p class="aipress-theme">%s</p>
<?php
while ( have_posts() ) {
	the_post();
	the_title( '<h2>', '</h2>' );
}
wp_footer();
?>
</body>
</html>
`, Marker(slug, version)),
	}
}

// HostileZip returns the archive of a hostile fixture plugin (SlipPlugin,
// SymlinkPlugin, OutsidePlugin); each is otherwise a valid plugin.
func HostileZip(slug string) []byte {
	main := Entry{Name: slug + "/" + slug + ".php", Body: pluginHeader("AIPress hostile "+slug, "Test fixture: must be refused.", "1.0")}
	switch slug {
	case SlipPlugin:
		return ZipOf(Entry{Name: slug + "/"}, main,
			Entry{Name: slug + "/../../" + slug + ".php", Body: "<?php echo 'escaped';"})
	case SymlinkPlugin:
		return ZipOf(Entry{Name: slug + "/"}, main,
			Entry{Name: slug + "/passwd", Body: "/etc/passwd", Mode: fs.ModeSymlink | 0o777})
	case OutsidePlugin:
		return ZipOf(Entry{Name: slug + "/"}, main,
			Entry{Name: slug + ".php", Body: "<?php echo 'outside';"})
	}
	panic("catalogtest: no hostile fixture " + slug)
}

// AddFixtures serves every fixture: aipress-hello 1.0 and 2.0,
// aipress-fatal 1.0, aipress-broken 1.0 and 2.0, aipress-theme 1.0 and
// 2.0, and the hostile plugins at 1.0.
func (s *Server) AddFixtures() {
	for _, v := range []string{"1.0", "2.0"} {
		s.AddPlugin(HelloPlugin, v, PluginFiles(HelloPlugin, v))
		s.AddPlugin(BrokenPlugin, v, PluginFiles(BrokenPlugin, v))
		s.AddTheme(TestTheme, v, ThemeFiles(TestTheme, v))
	}
	s.AddPlugin(FatalPlugin, "1.0", PluginFiles(FatalPlugin, "1.0"))
	for _, h := range []string{SlipPlugin, SymlinkPlugin, OutsidePlugin} {
		s.AddPluginZip(h, "1.0", HostileZip(h))
	}
}
