package record

import (
	"encoding/json"
	"testing"
	"time"
)

func benchRecord() *Record {
	r := newRecord(Requirement{Group: "approvers", Required: 2}, Requirement{Group: "security", Required: 1})
	r.Operation.Headers = map[string][]string{"Content-Type": {"application/json"}, "User-Agent": {"curl/8"}}
	_ = r.Approve(bob, ApproveInput{Notes: "ok"}, t0.Add(time.Minute))
	_ = r.Approve(dave, ApproveInput{Notes: "fine"}, t0.Add(2*time.Minute))
	return r
}

// BenchmarkRecordEncode and BenchmarkRecordDecode measure a typical record
// (two approvals, history) to and from its stored JSON.
func BenchmarkRecordEncode(b *testing.B) {
	r := benchRecord()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := json.Marshal(r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRecordDecode(b *testing.B) {
	data, _ := json.Marshal(benchRecord())
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		var r Record
		if err := json.Unmarshal(data, &r); err != nil {
			b.Fatal(err)
		}
	}
}
