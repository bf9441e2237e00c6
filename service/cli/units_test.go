package cli

import (
	"testing"
)

func TestParseSize(t *testing.T) {
	cases := map[string]struct {
		in   string
		want uint64
		bad  bool
	}{
		"bytes":      {in: "1048576", want: 1 << 20},
		"MiB spaced": {in: "100 MiB", want: 100 << 20},
		"GiB frac":   {in: "1.5GiB", want: 3 << 29},
		"G short":    {in: "2G", want: 2 << 30},
		"GB decimal": {in: "10 GB", want: 10e9},
		"B":          {in: "512 B", want: 512},
		"TiB":        {in: "1 TiB", want: 1 << 40},
		"empty":      {in: "", bad: true},
		"negative":   {in: "-1 MiB", bad: true},
		"unit only":  {in: "MiB", bad: true},
		"fraction":   {in: "0.5 B", bad: true},
		"words":      {in: "lots", bad: true},
		"huge":       {in: "99999999 TiB", bad: true},
		"nan":        {in: "NaN", bad: true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := ParseSize(tc.in)
			if tc.bad != (err != nil) || (!tc.bad && got != tc.want) {
				t.Fatalf("ParseSize(%q) = %d, %v", tc.in, got, err)
			}
		})
	}
}

func TestFormatSize(t *testing.T) {
	cases := map[uint64]string{0: "0 B", 512: "512 B", 1 << 10: "1 KiB", 100 << 20: "100 MiB", 3 << 29: "1.5 GiB", 1 << 40: "1 TiB", 1<<30 + 1: "1 GiB"}
	for in, want := range cases {
		if got := FormatSize(in); got != want {
			t.Errorf("FormatSize(%d) = %q, want %q", in, got, want)
		}
	}
}

// FuzzSize: whatever ParseSize accepts, FormatSize shows and ParseSize
// reads back close to it (within the display's rounding).
func FuzzSize(f *testing.F) {
	for _, s := range []string{"1", "100 MiB", "1.5GiB", "10 GB", "x", "-3", "1e3 KiB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSize(s)
		if err != nil {
			return
		}
		back, err := ParseSize(FormatSize(n))
		if err != nil {
			t.Fatalf("FormatSize(%d) = %q does not parse: %v", n, FormatSize(n), err)
		}
		if d := float64(back) - float64(n); d > float64(n)/10+1 || -d > float64(n)/10+1 {
			t.Fatalf("%q → %d → %q → %d", s, n, FormatSize(n), back)
		}
	})
}
