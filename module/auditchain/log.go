package auditchain

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/approval-gateway/gateway/module/attest"
)

// An exported log is JSON lines: first one {"checkpoint": "<JWS>"} per
// signed checkpoint, oldest first, then the events in seq order, each as
// stored.

// CheckpointLine is an export's line for a checkpoint.
type CheckpointLine struct {
	Checkpoint string `json:"checkpoint"`
}

// Checkpoint is what a verified checkpoint vouches for.
type Checkpoint struct {
	Hash   string
	Anchor bool // the log's start after pruning
}

// Checkpoints verifies signed checkpoints against keys and returns what
// they vouch for, by seq; a checkpoint that does not verify is the log's
// problem.
func Checkpoints(tokens []string, keys map[string]ed25519.PublicKey) (map[int64]Checkpoint, *Problem) {
	out := map[int64]Checkpoint{}
	for _, tok := range tokens {
		c, err := attest.VerifyCheckpoint(tok, keys)
		if err != nil {
			return nil, &Problem{Seq: claimedSeq(tok), Reason: "a checkpoint does not verify against the gateway's keys: " + err.Error()}
		}
		if prev, ok := out[c.Seq]; ok && prev.Hash != c.Hash {
			return nil, &Problem{Seq: c.Seq, Reason: "two signed checkpoints vouch for different hashes at this seq"}
		}
		out[c.Seq] = Checkpoint{Hash: c.Hash, Anchor: c.Anchor || out[c.Seq].Anchor}
	}
	return out, nil
}

// claimedSeq is the seq a checkpoint says, unverified (0 when unreadable).
func claimedSeq(tok string) int64 {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return 0
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return 0
	}
	var c struct{ Seq int64 }
	_ = json.Unmarshal(b, &c)
	return c.Seq
}

// VerifyExport verifies an exported log (JSON lines, as export writes it)
// against the gateway's keys.
func VerifyExport(r io.Reader, keys map[string]ed25519.PublicKey) (Result, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	var tokens []string
	var v *Verifier
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var cl CheckpointLine
		if json.Unmarshal(line, &cl) == nil && cl.Checkpoint != "" {
			if v != nil {
				return Result{}, errors.New("a checkpoint line after the events: an export lists its checkpoints first")
			}
			tokens = append(tokens, cl.Checkpoint)
			continue
		}
		if v == nil {
			cps, bad := Checkpoints(tokens, keys)
			if bad != nil {
				return Result{FirstBad: bad}, nil
			}
			v = NewVerifier(cps)
		}
		if !v.Event(line) {
			return v.res, nil
		}
	}
	if err := sc.Err(); err != nil {
		return Result{}, fmt.Errorf("reading the log: %w", err)
	}
	if v == nil {
		cps, bad := Checkpoints(tokens, keys)
		if bad != nil {
			return Result{FirstBad: bad}, nil
		}
		v = NewVerifier(cps)
	}
	return v.Finish(nil), nil
}
