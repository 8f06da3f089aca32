package record

import (
	"encoding/json"
	"reflect"
	"testing"
)

// FuzzRecordRoundTrip decodes arbitrary JSON as a record: whatever decodes
// encodes and decodes again to the same record, and its payload hash is
// stable.
func FuzzRecordRoundTrip(f *testing.F) {
	r := newRecord(Requirement{Group: "a", Required: 2})
	b, _ := json.Marshal(r)
	f.Add(b)
	f.Add([]byte(`{"id":"x","status":"approved","approvers":[{"group":"g","required":-1,"approvals":[{"subject":"s","eligible_groups":["g"]}]}]}`))
	f.Add([]byte(`{"operation":{"headers":{"A":["1","2"]},"body_size":-5},"completion_expiry":"1h"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var a Record
		if json.Unmarshal(data, &a) != nil {
			return
		}
		enc, err := json.Marshal(&a)
		if err != nil {
			t.Fatal(err)
		}
		var b Record
		if err := json.Unmarshal(enc, &b); err != nil {
			t.Fatalf("re-decoding %s: %v", enc, err)
		}
		if !reflect.DeepEqual(normalize(a), normalize(b)) {
			t.Fatalf("round trip changed the record:\n%+v\n%+v", a, b)
		}
		if PayloadHash(a.Operation, data) != PayloadHash(b.Operation, data) {
			t.Fatal("payload hash differs after a round trip")
		}
		_ = a.QuorumMet()
		_ = a.ApprovedBy()
	})
}

// normalize clears what JSON cannot tell apart (nil and empty).
func normalize(r Record) string {
	b, _ := json.Marshal(r)
	return string(b)
}
