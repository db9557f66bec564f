package nodes

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// byteUnits maps a size suffix to its multiplier (SPEC: KB/MB/GB are
// decimal, KiB/MiB/GiB binary). Longer suffixes come first so that "KiB"
// is not read as "B".
var byteUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10},
	{"MiB", 1 << 20},
	{"GiB", 1 << 30},
	{"KB", 1000},
	{"MB", 1000 * 1000},
	{"GB", 1000 * 1000 * 1000},
	{"B", 1},
}

// ParseByteSize parses a byte size: an integer number of bytes ("100"), or
// an integer followed by KB, MB, GB (×1000) or KiB, MiB, GiB (×1024), e.g.
// "512KB" or "10MiB". Blanks between number and unit are allowed. Negative
// sizes and overflows are errors. Used by `max_bytes` and by the validator.
func ParseByteSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, fmt.Errorf("byte size: empty value")
	}
	mult := int64(1)
	num := t
	for _, u := range byteUnits {
		if strings.HasSuffix(t, u.suffix) {
			mult = u.mult
			num = strings.TrimSpace(strings.TrimSuffix(t, u.suffix))
			break
		}
	}
	if num == "" || num[0] == '+' || num[0] == '-' {
		return 0, fmt.Errorf("byte size %q: want a non-negative integer with an optional unit KB, MB, GB, KiB, MiB or GiB", s)
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("byte size %q: want a non-negative integer with an optional unit KB, MB, GB, KiB, MiB or GiB", s)
	}
	if n > math.MaxInt64/mult {
		return 0, fmt.Errorf("byte size %q: too large", s)
	}
	return n * mult, nil
}
