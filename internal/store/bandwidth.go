package store

import (
	"fmt"
	"regexp"
)

// BandwidthListOptions selects the bandwidth counted in one month.
type BandwidthListOptions struct {
	// Month is the accounting period, "YYYY-MM" (required).
	Month string
	// Sites, when not nil, keeps only these sites.
	Sites []string
	// MinBytes keeps only the sites that sent more than it (0: all).
	MinBytes int64
}

var monthRE = regexp.MustCompile(`^[0-9]{4}-(0[1-9]|1[0-2])$`)

// ValidateBandwidth checks AddBandwidth's arguments (for implementations).
func ValidateBandwidth(month string, bytes map[string]int64) error {
	if !monthRE.MatchString(month) {
		return fmt.Errorf("%w: bandwidth month %q is not YYYY-MM", ErrInvalid, month)
	}
	for name, n := range bytes {
		if name == "" || len(name) > 253 || n < 0 {
			return fmt.Errorf("%w: bandwidth of site %q: %d bytes", ErrInvalid, name, n)
		}
	}
	return nil
}

// ValidateBandwidthList checks ListBandwidth's options (for
// implementations).
func ValidateBandwidthList(opts BandwidthListOptions) error {
	if !monthRE.MatchString(opts.Month) || opts.MinBytes < 0 {
		return fmt.Errorf("%w: bandwidth month %q (YYYY-MM), min bytes %d", ErrInvalid, opts.Month, opts.MinBytes)
	}
	return nil
}
