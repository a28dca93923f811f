package plans

import (
	"errors"
	"fmt"
	"net/mail"
	"net/url"
	"regexp"
	"unicode"

	"github.com/aipress/aipress/internal/store"
)

var colorRE = regexp.MustCompile(`^#[0-9a-fA-F]{6}$`)

// ValidateBranding checks an organisation's white-label fields (every
// field may be empty): product name up to 100 printable characters, logo
// an https URL with a host and no user info (up to 2048 bytes), colours
// #rrggbb, support e-mail a bare address. It reports every problem at
// once, each naming its field. The organisation handlers call it.
func ValidateBranding(b store.Branding) error {
	var errs []error
	if len(b.ProductName) > 100 {
		errs = append(errs, fmt.Errorf("branding.product_name: at most 100 characters, got %d", len(b.ProductName)))
	}
	for _, r := range b.ProductName {
		if !unicode.IsPrint(r) {
			errs = append(errs, errors.New("branding.product_name: must not contain control characters"))
			break
		}
	}
	if b.LogoURL != "" {
		u, err := url.Parse(b.LogoURL)
		switch {
		case len(b.LogoURL) > 2048:
			errs = append(errs, errors.New("branding.logo_url: at most 2048 bytes"))
		case err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil:
			errs = append(errs, fmt.Errorf("branding.logo_url: %q is not an https URL (https://host/path)", b.LogoURL))
		}
	}
	for _, c := range []struct{ field, v string }{{"primary_color", b.PrimaryColor}, {"accent_color", b.AccentColor}} {
		if c.v != "" && !colorRE.MatchString(c.v) {
			errs = append(errs, fmt.Errorf("branding.%s: %q is not a colour of the form #rrggbb", c.field, c.v))
		}
	}
	if b.SupportEmail != "" {
		if a, err := mail.ParseAddress(b.SupportEmail); err != nil || a.Address != b.SupportEmail || a.Name != "" {
			errs = append(errs, fmt.Errorf("branding.support_email: %q is not an e-mail address (name@example.com)", b.SupportEmail))
		}
	}
	return errors.Join(errs...)
}
