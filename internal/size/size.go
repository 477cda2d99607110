package size

import (
	"fmt"
	"math"
)

// String writes n bytes in the largest binary unit under which it is at
// least 1, with one decimal unless the value is whole.
func String(n int64) string {
	const units = "KMGTPE"
	if n < 1024 {
		return fmt.Sprintf("%d bytes", n)
	}
	v, u := float64(n)/1024, 0
	for v >= 1024 && u < len(units)-1 {
		v /= 1024
		u++
	}
	if v == math.Trunc(v) {
		return fmt.Sprintf("%.0f %ciB", v, units[u])
	}
	return fmt.Sprintf("%.1f %ciB", v, units[u])
}
