package cli

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/bmi-go/bmi/service/fault"
)

var units = []struct {
	name string
	mult float64
}{
	{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10},
	{"TB", 1e12}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"kB", 1e3},
	{"T", 1 << 40}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}, {"k", 1 << 10},
	{"B", 1}, {"", 1},
}

// ParseSize reads a size in bytes or human units: "1048576", "100 MiB",
// "1.5GiB", "2G" (binary), "10 GB" (decimal).
func ParseSize(s string) (uint64, error) {
	t := strings.TrimSpace(s)
	for _, u := range units {
		num, ok := strings.CutSuffix(t, u.name)
		if !ok {
			continue
		}
		num = strings.TrimSpace(num)
		if num == "" {
			break
		}
		f, err := strconv.ParseFloat(num, 64)
		if err != nil || f < 0 || math.IsNaN(f) || math.IsInf(f, 0) {
			break
		}
		v := f * u.mult
		if v >= 1<<63 {
			return 0, fault.Errorf(fault.Invalid, "size %q is too large", s)
		}
		if u.mult > 1 {
			v = math.Round(v) // "9.3 GiB" is a whole number of bytes, rounded
		}
		if v != math.Trunc(v) {
			return 0, fault.Errorf(fault.Invalid, "size %q is not a whole number of bytes", s)
		}
		return uint64(v), nil
	}
	return 0, fault.Errorf(fault.Invalid, "size %q: want a number of bytes or e.g. \"100 MiB\", \"1.5 GiB\"", s)
}

// FormatSize shows bytes in binary units: "512 B", "100 MiB", "1.5 GiB".
func FormatSize(n uint64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	for _, u := range units[:4] {
		if float64(n) >= u.mult {
			v := float64(n) / u.mult
			s := strconv.FormatFloat(v, 'f', 1, 64)
			s = strings.TrimSuffix(s, ".0")
			return s + " " + u.name
		}
	}
	return fmt.Sprintf("%d B", n)
}
