package proxy

import (
	"fmt"
	"strconv"
	"strings"
)

// ParseSize reads a byte count for --max-body: a number with an optional
// unit, B, KB/KiB, MB/MiB or GB/GiB (K, M, G alone mean KiB, MiB, GiB).
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	num, unit := t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	mult := map[string]float64{
		"": 1, "b": 1,
		"k": 1 << 10, "kib": 1 << 10, "kb": 1e3,
		"m": 1 << 20, "mib": 1 << 20, "mb": 1e6,
		"g": 1 << 30, "gib": 1 << 30, "gb": 1e9,
	}[unit]
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || mult == 0 || f < 0 || f*mult > 1<<50 {
		return 0, fmt.Errorf("size %q: want a byte count such as 1048576, 512KiB or 1MiB", s)
	}
	return int64(f * mult), nil
}
