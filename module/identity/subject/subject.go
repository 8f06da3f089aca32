// Package subject holds the two ways the gateway compares the people
// behind token subjects. A grant (who the requester is: who may read,
// cancel or complete a request) compares a subject exactly as the identity
// provider issued it: OpenID Connect's sub is case-sensitive, so "Alice"
// may be another account than "alice". A refusal (self-approval, one
// approval per person, the pending cap) compares subjects by Key, under
// which every spelling that could name the same person is one.
package subject

import (
	"errors"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/cases"
	"golang.org/x/text/secure/precis"
	"golang.org/x/text/unicode/norm"
	"golang.org/x/text/width"
)

// Check reports why s cannot name a person, or nil: a subject must be
// valid UTF-8, hold something besides white space, and hold no control
// character (C0, DEL or C1, NUL included).
func Check(s string) error {
	switch {
	case !utf8.ValidString(s):
		return errors.New("the subject is not valid UTF-8")
	case strings.TrimSpace(s) == "":
		return errors.New("the subject is empty")
	case strings.IndexFunc(s, unicode.IsControl) >= 0:
		return errors.New("the subject holds a control character")
	}
	return nil
}

// Key is the form under which subjects that could name the same person
// are equal: white space trimmed and its runs folded to one space, then
// each space-separated part mapped as RFC 8265's UsernameCaseMapped
// profile maps a user name (fullwidth and halfwidth forms to their
// ordinary ones, lower case, NFC), with full Unicode case folding on top
// ("straße" and "STRASSE" are one). Default-ignorable code points
// (zero-width characters, bidi controls) are dropped first, and a part the
// profile refuses (a symbol, a compatibility character) is mapped the same
// way with NFKC, so nothing escapes the fold. With caseSensitive, for
// identity providers whose ids differ only by case, the case is kept
// (RFC 8265's UsernameCasePreserved) and all else is folded alike.
func Key(s string, caseSensitive bool) string {
	switch ascii, upper := asciiWord(s); {
	case ascii && (!upper || caseSensitive):
		return s // the common case: nothing to map
	case ascii:
		return strings.ToLower(s) // what the mapping does to ASCII
	}
	// A compatibility mapping may make white space ("˝" is a space and a
	// combining mark): fold again until nothing changes, so that a key is
	// its own key.
	for range 4 {
		parts := strings.FieldsFunc(s, unicode.IsSpace)
		for i, p := range parts {
			parts[i] = foldPart(p, caseSensitive)
		}
		k := strings.Join(parts, " ")
		if k == s {
			break
		}
		s = k
	}
	return s
}

// foldPart maps one space-free part of a subject.
func foldPart(p string, caseSensitive bool) string {
	p = strings.Map(dropIgnorable, p)
	profile := precis.UsernameCaseMapped
	if caseSensitive {
		profile = precis.UsernameCasePreserved
	}
	out, err := profile.String(p)
	if err != nil {
		// Not an identifier the profile allows: the same mappings, with
		// compatibility characters (𝐛𝐨𝐛, ﬁ) decomposed as well.
		out = norm.NFKC.String(width.Fold.String(p))
	}
	if !caseSensitive {
		out = norm.NFKC.String(cases.Fold().String(out))
	}
	return out
}

// dropIgnorable removes default-ignorable code points: format characters
// (zero-width space and joiners, bidi controls, soft hyphen), variation
// selectors and the rest of Unicode's Default_Ignorable_Code_Point.
func dropIgnorable(r rune) rune {
	if unicode.In(r, unicode.Cf, unicode.Variation_Selector, unicode.Other_Default_Ignorable_Code_Point) {
		return -1
	}
	return r
}

// asciiWord reports whether s is printable ASCII without spaces, whose
// key is itself but for its case, and whether it holds upper case.
func asciiWord(s string) (ascii, upper bool) {
	if s == "" {
		return false, false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f {
			return false, false
		}
		upper = upper || ('A' <= c && c <= 'Z')
	}
	return true, upper
}
