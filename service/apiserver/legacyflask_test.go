package apiserver

import (
	"encoding/json"
	"testing"
	"unicode/utf8"
)

// TestPyDumps: the bytes json.dumps writes for the legacy answers' shapes
// (recorded from python3 -c 'import json; print(json.dumps(...))', whose
// defaults, ensure_ascii and ", "/": " separators, are Python 2.7's).
func TestPyDumps(t *testing.T) {
	tests := map[string]struct {
		in   any
		want string
	}{
		"empty list":       {[]string{}, `[]`},
		"names":            {[]string{"s1", "debian"}, `["s1", "debian"]`},
		"pairs":            {[][2]string{{"s1", "debian"}, {"s2", "centos"}}, `[["s1", "debian"], ["s2", "centos"]]`},
		"no pairs":         {[][2]string{}, `[]`},
		"string":           {"1img7", `"1img7"`},
		"escapes":          {"a\"b\\c\nd\te\x01/<>&", `"a\"b\\c\nd\te\u0001/<>&"`},
		"non-ascii":        {"café", `"caf\u00e9"`},
		"del":              {"\x7f", `"\u007f"`},
		"astral":           {"😀", `"\ud83d\ude00"`},
		"names with comma": {[]string{"a, b"}, `["a, b"]`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := pyDumps(tc.in)
			if err != nil || string(got) != tc.want {
				t.Fatalf("pyDumps(%#v) = %s, %v; want %s", tc.in, got, err, tc.want)
			}
		})
	}
	if _, err := pyDumps(42); err == nil {
		t.Fatal("pyDumps(42) succeeded")
	}
}

// FuzzPyDumps: whatever the names, the answer is ASCII JSON that decodes
// back to them.
func FuzzPyDumps(f *testing.F) {
	for _, s := range []string{"debian", "a\"b", "café", "😀", "\x00\x1f\x7f", "\xff"} {
		f.Add(s, "parent")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		if !utf8.ValidString(a) || !utf8.ValidString(b) {
			t.Skip()
		}
		got, err := pyDumps([][2]string{{a, b}})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range got {
			if c < 0x20 || c > 0x7e {
				t.Fatalf("pyDumps wrote byte %#x: %s", c, got)
			}
		}
		var back [][2]string
		if err := json.Unmarshal(got, &back); err != nil || len(back) != 1 || back[0] != [2]string{a, b} {
			t.Fatalf("pyDumps(%q, %q) = %s, decodes to %q (%v)", a, b, got, back, err)
		}
	})
}
