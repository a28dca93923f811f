package metrics

import "time"

// timeSince is time.Since, replaceable in tests.
var timeSince = time.Since
