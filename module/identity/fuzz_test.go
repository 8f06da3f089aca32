package identity

import (
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// FuzzVerify feeds arbitrary tokens to the verifier: it must never panic,
// and whatever it accepts must carry a non-empty subject.
func FuzzVerify(f *testing.F) {
	v, err := New(Options{Secret: secret})
	if err != nil {
		f.Fatal(err)
	}
	good, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, claims(nil)).SignedString(secret)
	for _, s := range []string{good, "", "a.b.c", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", strings.Repeat(".", 100), good + "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		id, err := v.Verify(tok)
		if err == nil && (id == nil || id.Subject == "") {
			t.Fatalf("accepted a token without a subject: %q", tok)
		}
		if err != nil && tok != "" && len(tok) > 8 && strings.Contains(err.Error(), tok) {
			t.Fatalf("error echoes the token")
		}
	})
}
