package subject

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// TestKeyFoldsSpellingsOfOnePerson: every spelling the identity provider
// may pass on for one person has one key (refusals fail safe), and
// different people keep different keys.
func TestKeyFoldsSpellingsOfOnePerson(t *testing.T) {
	same := []struct {
		name string
		a, b string
	}{
		{"case", "alice", "Alice"},
		{"upper case", "alice@example.com", "ALICE@EXAMPLE.COM"},
		{"NFC and NFD", "jos\u00e9", "jose\u0301"},
		{"NFC and NFD, diaeresis", "zo\u00eb", "zoe\u0308"},
		{"NFD in upper case", "jos\u00e9", "JOSE\u0301"},
		{"fullwidth", "bob", "\uff42\uff4f\uff42"},
		{"fullwidth upper case", "bob", "\uff22\uff2f\uff22"},
		{"trailing space", "bob", "bob "},
		{"leading space", "bob", " bob"},
		{"trailing tab", "bob", "bob\t"},
		{"no-break space around", "bob", "\u00a0bob\u3000"},
		{"repeated inner space", "bob smith", "bob   smith"},
		{"inner tab", "bob smith", "bob\tsmith"},
		{"ideographic space inside", "bob smith", "bob\u3000smith"},
		{"sharp s and SS", "straße@example.com", "STRASSE@EXAMPLE.COM"},
		{"sharp s and ss", "straße", "strasse"},
		{"capital sharp s", "STRAẞE", "strasse"},
		{"Kelvin sign", "\u212aelvin", "kelvin"},
		{"Kelvin sign and K", "\u212aELVIN", "Kelvin"},
		{"Angstrom sign", "\u212bngstrom", "\u00e5ngstrom"},
		{"zero-width space", "bob", "b\u200bob"},
		{"zero-width joiner at the end", "bob", "bob\u200d"},
		{"bidi override", "bob", "\u202ebob"},
		{"soft hyphen", "bob", "bo\u00adb"},
		{"mathematical bold", "bob", "\U0001d41b\U0001d428\U0001d41b"},
		{"ligature", "file", "\ufb01le"},
		{"Greek final sigma", "σοφοσ", "ΣΟΦΟΣ"},
	}
	for _, tc := range same {
		t.Run(tc.name, func(t *testing.T) {
			if ka, kb := Key(tc.a, false), Key(tc.b, false); ka != kb {
				t.Fatalf("Key(%q) = %q, Key(%q) = %q: one person counts twice", tc.a, ka, tc.b, kb)
			}
		})
	}
	different := [][2]string{
		{"bob", "bobby"},
		{"bob", "rob"},
		{"bob smith", "bobsmith"},
		{"jose", "jos\u00e9"},
		{"alice", "alice2"},
		{"a.b", "ab"},
	}
	for _, d := range different {
		if Key(d[0], false) == Key(d[1], false) {
			t.Errorf("Key(%q) == Key(%q): two people are one", d[0], d[1])
		}
	}
}

// TestCaseSensitiveKeyKeepsCase: with case_sensitive_subjects, ids that
// differ only by case stay apart, and every other variant still folds.
func TestCaseSensitiveKeyKeepsCase(t *testing.T) {
	for _, d := range [][2]string{{"Alice", "alice"}, {"AbC123", "abc123"}, {"straße", "STRASSE"}} {
		if Key(d[0], true) == Key(d[1], true) {
			t.Errorf("case-sensitive: Key(%q) == Key(%q)", d[0], d[1])
		}
	}
	for _, d := range [][2]string{{"Jos\u00e9", "Jose\u0301"}, {"Bob", "\uff22\uff4f\uff42"}, {"Bob", " Bob\t"}, {"Bob", "B\u200bob"}} {
		if Key(d[0], true) != Key(d[1], true) {
			t.Errorf("case-sensitive: Key(%q) = %q != Key(%q) = %q", d[0], Key(d[0], true), d[1], Key(d[1], true))
		}
	}
}

// TestCheckRefusesWhatNamesNobody: empty, control characters and invalid
// UTF-8 are no subject; anything else printable is.
func TestCheckRefusesWhatNamesNobody(t *testing.T) {
	bad := map[string]string{
		"empty":            "",
		"spaces":           "   ",
		"tab and newline":  "\t\n",
		"NUL":              "\x00",
		"NUL after a name": "bob\x00",
		"C0 escape":        "bob\x1b[31m",
		"tab inside":       "bob\tsmith",
		"DEL":              "bob\x7f",
		"C1 (NEL)":         "bob\u0085",
		"C1 (CSI)":         "\u009bbob",
		"invalid UTF-8":    "bob\xff",
		"a lone surrogate": "bob\xed\xa0\x80",
	}
	for name, s := range bad {
		if err := Check(s); err == nil {
			t.Errorf("%s (%q): accepted", name, s)
		}
	}
	for _, s := range []string{"bob", "Alice", "jos\u00e9", "bob smith", "eve, frank", "00u1a2b3c4d5e6f7g8h9", "\uff42\uff4f\uff42", "user@example.com"} {
		if err := Check(s); err != nil {
			t.Errorf("%q: %v", s, err)
		}
	}
}

// TestASCIIFastPathIsTheMapping: the fast path for ASCII subjects gives
// what the full mapping gives, case-sensitive or not.
func TestASCIIFastPathIsTheMapping(t *testing.T) {
	for _, s := range []string{"bob", "alice@example.com", "00u1a2b3", "a_b-c.d+e", "x!#$%&'*", "Alice.Smith@Example.COM", "KELVIN", "~Z|{"} {
		if ascii, _ := asciiWord(s); !ascii {
			t.Fatalf("%q is not an ASCII word", s)
		}
		for _, cs := range []bool{false, true} {
			if got, want := Key(s, cs), strings.Join(mapParts(s, cs), " "); got != want {
				t.Errorf("Key(%q, %v) = %q; the full mapping gives %q", s, cs, got, want)
			}
		}
	}
}

// mapParts is Key without its fast path.
func mapParts(s string, caseSensitive bool) []string {
	parts := strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == '\t' || r == '\n' })
	for i, p := range parts {
		parts[i] = foldPart(p, caseSensitive)
	}
	return parts
}

// FuzzKey: a key is its own key (folding twice changes nothing), is
// valid UTF-8 for valid input, and the case-preserving key folds to the
// case-mapped one.
func FuzzKey(f *testing.F) {
	for _, s := range []string{"bob", "Jose\u0301", "\uff22ob", " a  b ", "straße", "\u212a", "\U0001d41b", "b\u200bob", "İstanbul", "ǅ", "\u02dd", "a\u00a8b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			return
		}
		for _, cs := range []bool{false, true} {
			k := Key(s, cs)
			if again := Key(k, cs); again != k {
				t.Fatalf("Key(%q, %v) = %q, but Key of that is %q", s, cs, k, again)
			}
			if !utf8.ValidString(k) {
				t.Fatalf("Key(%q) is not UTF-8", s)
			}
		}
	})
}
