package auditchain

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// The canonical form is RFC 8785's: members sorted by UTF-16 code units
// (so U+1F600 sorts before U+FB33, unlike by code points), minimal string
// escapes (no \u escape of <, > or &, or of U+2028), integers as written.
func TestCanonicalJSON(t *testing.T) {
	in := `{"b": [1, true, null], "a": "x<y>&\u2028\n\u0001\"\\", "\ufb33": 1, "\ud83d\ude00": 2, "seq": 12345678901}`
	var v any
	d := json.NewDecoder(strings.NewReader(in))
	d.UseNumber()
	if err := d.Decode(&v); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := canonical(&b, v); err != nil {
		t.Fatal(err)
	}
	want := "{\"a\":\"x<y>&\u2028\\n\\u0001\\\"\\\\\",\"b\":[1,true,null],\"seq\":12345678901,\"\U0001F600\":2,\"\uFB33\":1}"
	if b.String() != want {
		t.Fatalf("got  %s\nwant %s", b.String(), want)
	}
	if err := canonical(&b, json.Number("1.5")); err == nil {
		t.Fatal("a fraction was written")
	}
}

// An event's hash leaves out its own "hash" and refuses repeated members.
func TestHash(t *testing.T) {
	a, err := Hash([]byte(`{"seq":1,"prev_hash":"00","hash":"whatever","x":"y"}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Hash([]byte(`{"x":"y","seq":1,"prev_hash":"00"}`))
	if a != b || len(a) != 64 {
		t.Fatalf("%s %s", a, b)
	}
	if _, err := Hash([]byte(`{"x":"y","x":"z"}`)); err == nil {
		t.Fatal("a repeated member was taken")
	}
}

// Events from before the chain (an upgraded store) are counted when they
// come before its first event; one outside the chain after it is not
// taken.
func TestUnchainedEvents(t *testing.T) {
	first := map[string]any{"id": "b", "seq": 1, "prev_hash": Genesis}
	raw, _ := json.Marshal(first)
	first["hash"], _ = Hash(raw)
	chained, _ := json.Marshal(first)
	old := []byte(`{"id": "a", "action": "parked"}`)
	v := NewVerifier(nil)
	if !v.Event(old) || !v.Event(old) || !v.Event(chained) {
		t.Fatalf("%+v", v.res.FirstBad)
	}
	if res := v.Finish(nil); !res.OK || res.Unchained != 2 || res.Checked != 1 {
		t.Fatalf("%+v", res)
	}
	v = NewVerifier(nil)
	if v.Event(chained); v.Event(old) || v.Finish(nil).OK {
		t.Fatal("an event outside the chain after its start was taken")
	}
}
