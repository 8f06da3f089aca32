package subject

import (
	"testing"

	"golang.org/x/text/cases"
)

// BenchmarkKey measures the folded key of a refusal beside plain Unicode
// case folding (the key before), for the subjects identity providers
// issue: ASCII ids and e-mail addresses (the fast path), one in upper
// case, and names beyond ASCII.
func BenchmarkKey(b *testing.B) {
	for _, tc := range []struct{ name, sub string }{
		{"ascii", "alice@example.com"},
		{"upper", "Alice.Smith@Example.com"},
		{"nfd", "jose\u0301.garci\u0301a@example.com"},
		{"fullwidth", "\uff42\uff4f\uff42"},
	} {
		b.Run(tc.name+"/key", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = Key(tc.sub, false)
			}
		})
		b.Run(tc.name+"/fold", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = cases.Fold().String(tc.sub)
			}
		})
	}
}
