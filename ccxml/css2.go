package ccxml

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// ParseTime parses a CSS2 time value as CCXML uses for delay and timeout
// (CSS2 section 4.3.2: a non-negative number immediately followed by "s" or
// "ms", e.g. "5s", "1.5s", "200ms"). Surrounding white space is allowed; the
// unit is case-insensitive. Negative values, missing units and values that
// overflow time.Duration are errors.
func ParseTime(s string) (time.Duration, error) {
	t := strings.TrimSpace(s)
	var unit time.Duration
	switch {
	case len(t) > 2 && strings.EqualFold(t[len(t)-2:], "ms"):
		unit, t = time.Millisecond, t[:len(t)-2]
	case len(t) > 1 && (t[len(t)-1] == 's' || t[len(t)-1] == 'S'):
		unit, t = time.Second, t[:len(t)-1]
	default:
		return 0, fmt.Errorf("parse css2 time %q: want a number followed by s or ms", s)
	}
	if t == "" || strings.ContainsAny(t, "eE+-xXpP_ \t") || strings.Count(t, ".") > 1 {
		return 0, fmt.Errorf("parse css2 time %q: bad number", s)
	}
	for _, c := range t {
		if (c < '0' || c > '9') && c != '.' {
			return 0, fmt.Errorf("parse css2 time %q: bad number", s)
		}
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("parse css2 time %q: bad number", s)
	}
	d := f * float64(unit)
	if d > float64(math.MaxInt64) {
		return 0, fmt.Errorf("parse css2 time %q: too large", s)
	}
	return time.Duration(d), nil
}
