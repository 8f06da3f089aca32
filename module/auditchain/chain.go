// Package auditchain makes the audit log tamper-evident: each event holds
// its place in one sequence (seq), the hash of the event before it
// (prev_hash) and its own hash, the hex SHA-256 of its canonical JSON
// (RFC 8785) without "hash". Signed checkpoints vouch for the hash at a
// seq. Verify checks a log, in order, offline: it names the first event
// that was edited, removed or moved. The package reads JSON only: it
// knows nothing of etcd.
package auditchain

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strconv"
	"unicode/utf8"
)

// Genesis is the prev_hash of the first event.
const Genesis = "0000000000000000000000000000000000000000000000000000000000000000"

// Hash is the hash of an event given as a JSON object: the SHA-256 of its
// canonical JSON, without its "hash" member.
func Hash(event []byte) (string, error) {
	if err := unique(json.NewDecoder(bytes.NewReader(event))); err != nil {
		return "", err
	}
	var obj map[string]any
	d := json.NewDecoder(bytes.NewReader(event))
	d.UseNumber()
	if err := d.Decode(&obj); err != nil {
		return "", err
	}
	delete(obj, "hash")
	var b bytes.Buffer
	if err := canonical(&b, obj); err != nil {
		return "", err
	}
	sum := sha256.Sum256(b.Bytes())
	return hex.EncodeToString(sum[:]), nil
}

// unique checks that no object in the JSON value d reads names a member
// twice: readers differ on which one counts, so an event with a repeated
// member says two things.
func unique(d *json.Decoder) error {
	t, err := d.Token()
	if err != nil {
		return err
	}
	switch t {
	case json.Delim('{'):
		seen := map[string]bool{}
		for d.More() {
			k, err := d.Token()
			if err != nil {
				return err
			}
			name, _ := k.(string)
			if seen[name] {
				return fmt.Errorf("the member %q is repeated", name)
			}
			seen[name] = true
			if err := unique(d); err != nil {
				return err
			}
		}
		_, err = d.Token()
	case json.Delim('['):
		for d.More() {
			if err := unique(d); err != nil {
				return err
			}
		}
		_, err = d.Token()
	}
	return err
}

// canonical writes v as RFC 8785 (JCS) does, for the values JSON decoding
// gives: members sorted by their UTF-16 code units, no white space,
// strings escaped minimally, integers as integers.
func canonical(b *bytes.Buffer, v any) error {
	switch v := v.(type) {
	case nil:
		b.WriteString("null")
	case bool:
		b.WriteString(strconv.FormatBool(v))
	case json.Number:
		n, ok := new(big.Int).SetString(v.String(), 10)
		if !ok || n.BitLen() > 53 {
			return fmt.Errorf("the number %s is not an integer JSON keeps exactly", v)
		}
		b.WriteString(n.String())
	case string:
		quote(b, v)
	case []any:
		b.WriteByte('[')
		for i, x := range v {
			if i > 0 {
				b.WriteByte(',')
			}
			if err := canonical(b, x); err != nil {
				return err
			}
		}
		b.WriteByte(']')
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.SortFunc(keys, utf16Compare)
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			quote(b, k)
			b.WriteByte(':')
			if err := canonical(b, v[k]); err != nil {
				return err
			}
		}
		b.WriteByte('}')
	default:
		return fmt.Errorf("a %T is not JSON", v)
	}
	return nil
}

// quote writes s as a JSON string the way RFC 8785 does: only '"', '\'
// and control characters are escaped.
func quote(b *bytes.Buffer, s string) {
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\b':
			b.WriteString(`\b`)
		case r == '\f':
			b.WriteString(`\f`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20:
			fmt.Fprintf(b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
}

// utf16Compare orders strings by their UTF-16 code units, as RFC 8785
// sorts member names.
func utf16Compare(a, b string) int {
	for a != "" && b != "" {
		ra, na := utf8.DecodeRuneInString(a)
		rb, nb := utf8.DecodeRuneInString(b)
		if ra != rb {
			ua, ub := utf16Units(ra), utf16Units(rb)
			return slices.Compare(ua, ub)
		}
		a, b = a[na:], b[nb:]
	}
	return len(a) - len(b)
}

func utf16Units(r rune) []uint16 {
	if r < 0x10000 {
		return []uint16{uint16(r)}
	}
	r -= 0x10000
	return []uint16{uint16(0xd800 + r>>10), uint16(0xdc00 + r&0x3ff)}
}

// Link is an event's place in the chain.
type Link struct {
	Seq      int64  `json:"seq"`
	PrevHash string `json:"prev_hash"`
	Hash     string `json:"hash"`
}

// Problem is the first thing wrong with a log: the seq where it was
// found, and what.
type Problem struct {
	Seq    int64  `json:"seq"`
	Reason string `json:"reason"`
}

// Result is what a verification found.
type Result struct {
	OK bool `json:"ok"`
	// Checked is the number of events checked.
	Checked int `json:"checked"`
	// Checkpoints is the number of signed checkpoints that verified.
	Checkpoints int `json:"checkpoints"`
	// Unchained is the number of events written before the chain existed
	// (a store from before it), which come before its first event.
	Unchained int      `json:"unchained,omitempty"`
	FirstBad  *Problem `json:"first_bad,omitempty"`
}

// ErrUnanchored is the problem of a log that does not start at seq 1 and
// has no signed pruning anchor for the event before its first: events were
// removed from its start.
var ErrUnanchored = errors.New("the log does not start at seq 1 and no signed pruning anchor vouches for the event before its first: events were removed from its start")
