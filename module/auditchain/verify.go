package auditchain

import (
	"encoding/json"
	"fmt"
)

// Verifier checks a log event by event, in seq order, against the signed
// checkpoints it was given (whose signatures the caller verified). It
// stops at the first problem.
type Verifier struct {
	checkpoints map[int64]Checkpoint // by seq
	last        *Link
	ahead       *Link // an event past a gap: removed, or reordered?
	res         Result
}

// NewVerifier starts a verification; checkpoints are verified, by seq.
func NewVerifier(checkpoints map[int64]Checkpoint) *Verifier {
	return &Verifier{checkpoints: checkpoints, res: Result{Checkpoints: len(checkpoints)}}
}

// Failed reports whether a problem was found.
func (v *Verifier) Failed() bool { return v.res.FirstBad != nil }

func (v *Verifier) fail(seq int64, format string, args ...any) bool {
	v.res.FirstBad = &Problem{Seq: seq, Reason: fmt.Sprintf(format, args...)}
	return false
}

// Event checks the next event (a JSON object as stored). It returns false
// once a problem was found.
func (v *Verifier) Event(raw []byte) bool {
	if v.Failed() {
		return false
	}
	var l Link
	err := json.Unmarshal(raw, &l)
	if err == nil && l.Seq == 0 && l.Hash == "" && v.last == nil && v.ahead == nil {
		// Written before the chain existed (an upgraded store): before the
		// chain's first event only, and counted.
		v.res.Unchained++
		return true
	}
	if err != nil || l.Seq < 1 || l.Hash == "" || l.PrevHash == "" {
		next := int64(1)
		if v.last != nil {
			next = v.last.Seq + 1
		}
		return v.fail(next, "an event without its place in the chain (seq, prev_hash, hash)")
	}
	if v.ahead != nil {
		if l.Seq == v.last.Seq+1 {
			return v.fail(l.Seq, "out of order: seq %d comes before it (reordered)", v.ahead.Seq)
		}
		return v.fail(v.last.Seq+1, "missing: the log goes from seq %d to seq %d (removed)", v.last.Seq, v.ahead.Seq)
	}
	switch {
	case v.last == nil && l.Seq == 1:
		if l.PrevHash != Genesis {
			return v.fail(1, "the first event's prev_hash is not the genesis hash: edited")
		}
	case v.last == nil:
		anchor, ok := v.checkpoints[l.Seq-1]
		if !ok || !anchor.Anchor {
			return v.fail(l.Seq, "%v", ErrUnanchored)
		}
		if l.PrevHash != anchor.Hash {
			return v.fail(l.Seq, "its prev_hash is not the hash the signed checkpoint at seq %d vouches for: the event before was edited, or this one", l.Seq-1)
		}
	case l.Seq <= v.last.Seq:
		return v.fail(l.Seq, "out of order: seq %d comes after seq %d (reordered)", l.Seq, v.last.Seq)
	case l.Seq > v.last.Seq+1:
		v.ahead = &l // the next event tells: the missing one, or not
		return true
	case l.PrevHash != v.last.Hash:
		return v.fail(v.last.Seq, "its hash is not the one the next event (seq %d) recorded: edited, or replaced", l.Seq)
	}
	h, err := Hash(raw)
	if err != nil {
		return v.fail(l.Seq, "unreadable: %v", err)
	}
	if h != l.Hash {
		return v.fail(l.Seq, "its content does not match its hash: edited")
	}
	if want, ok := v.checkpoints[l.Seq]; ok && want.Hash != l.Hash {
		return v.fail(l.Seq, "its hash is not the one the signed checkpoint at this seq vouches for: edited, or replaced")
	}
	v.last = &l
	v.res.Checked++
	return true
}

// Finish ends the verification. Every signed checkpoint must be covered:
// a checkpoint past the last event means events were removed from the
// end. head, when known (online), is the store's chain head, which the
// log must reach too.
func (v *Verifier) Finish(head *Link) Result {
	if v.ahead != nil {
		v.fail(v.last.Seq+1, "missing: the log goes from seq %d to seq %d (removed)", v.last.Seq, v.ahead.Seq)
	}
	if v.Failed() {
		return v.res
	}
	lastSeq := int64(0)
	if v.last != nil {
		lastSeq = v.last.Seq
	}
	for seq := range v.checkpoints {
		if seq > lastSeq {
			v.fail(lastSeq+1, "missing: a signed checkpoint vouches for seq %d, the log ends at seq %d (removed from the end)", seq, lastSeq)
			return v.res
		}
	}
	if head != nil && head.Seq > lastSeq {
		v.fail(lastSeq+1, "missing: the chain's head is at seq %d, the log ends at seq %d (removed from the end)", head.Seq, lastSeq)
		return v.res
	}
	if head != nil && v.last != nil && head.Seq == lastSeq && head.Hash != v.last.Hash {
		v.fail(lastSeq, "its hash is not the chain head's: edited")
		return v.res
	}
	v.res.OK = true
	return v.res
}

// Sequencer puts events read in another order (the store keeps them by
// time, and concurrent writers commit out of time order) back in seq
// order, holding at most window events: an event further out of place
// than that is passed on out of order, which Verify reports.
type Sequencer struct {
	window  int
	next    int64
	pending map[int64][]byte
	emit    func(raw []byte) bool
}

// NewSequencer passes events to emit in seq order, starting from the
// lowest it sees, until emit returns false.
func NewSequencer(window int, emit func(raw []byte) bool) *Sequencer {
	return &Sequencer{window: window, pending: map[int64][]byte{}, emit: emit}
}

// Push takes the next event as read; false once emit said stop.
func (q *Sequencer) Push(raw []byte) bool {
	var l Link
	_ = json.Unmarshal(raw, &l)
	if l.Seq == 0 {
		return q.emit(raw) // outside the chain: the verifier judges where it may be
	}
	if _, dup := q.pending[l.Seq]; dup || l.Seq < q.next {
		return q.emit(raw) // a repeated or late seq goes through: the verifier reports it
	}
	q.pending[l.Seq] = raw
	return q.drain(false)
}

// Flush passes on whatever is held, in seq order.
func (q *Sequencer) Flush() bool { return q.drain(true) }

func (q *Sequencer) drain(all bool) bool {
	for len(q.pending) > 0 {
		raw, ok := q.pending[q.next]
		if !ok {
			if !all && len(q.pending) <= q.window {
				return true
			}
			q.next = q.lowest()
			raw = q.pending[q.next]
		}
		delete(q.pending, q.next)
		q.next++
		if !q.emit(raw) {
			return false
		}
	}
	return true
}

func (q *Sequencer) lowest() int64 {
	first := true
	var min int64
	for s := range q.pending {
		if first || s < min {
			min, first = s, false
		}
	}
	return min
}
