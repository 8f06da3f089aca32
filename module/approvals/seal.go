package approvals

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// Sealer seals the credentials of a parked call for an auto-complete
// replay: AES-256-GCM under the first key; every key can open, so keys
// rotate by putting the new one first.
type Sealer struct {
	keys    []cipher.AEAD
	ids     []string
	headers []string
}

// NewSealer builds a Sealer from 32-byte keys (newest first) and the
// headers to seal (Authorization is always sealed).
func NewSealer(keys [][]byte, headers []string) (*Sealer, error) {
	if len(keys) == 0 {
		return nil, errors.New("replay_credentials sealed: at least one key is required")
	}
	s := &Sealer{headers: []string{"Authorization"}}
	for _, h := range headers {
		if h = http.CanonicalHeaderKey(h); h != "Authorization" {
			s.headers = append(s.headers, h)
		}
	}
	for i, k := range keys {
		if len(k) != 32 {
			return nil, fmt.Errorf("replay_credentials sealed: key %d has %d bytes, want 32", i+1, len(k))
		}
		block, err := aes.NewCipher(k)
		if err != nil {
			return nil, err
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(k)
		s.keys, s.ids = append(s.keys, aead), append(s.ids, hex.EncodeToString(sum[:4]))
	}
	return s, nil
}

// sealed is the stored form: which key, and the ciphertext.
type sealed struct {
	KeyID string `json:"key_id"`
	Box   []byte `json:"box"`
}

// Seal returns the sealed credential headers of h bound to request id, or
// nil when h has none of them.
func (s *Sealer) Seal(id string, h http.Header) ([]byte, error) {
	creds := http.Header{}
	for _, name := range s.headers {
		if v := h.Values(name); len(v) > 0 {
			creds[name] = v
		}
	}
	if len(creds) == 0 {
		return nil, nil
	}
	plain, err := json.Marshal(creds)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, s.keys[0].NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return json.Marshal(sealed{KeyID: s.ids[0], Box: s.keys[0].Seal(nonce, nonce, plain, []byte(id))})
}

// Open returns the credential headers sealed for request id.
func (s *Sealer) Open(id string, b []byte) (http.Header, error) {
	var sl sealed
	if err := json.Unmarshal(b, &sl); err != nil {
		return nil, err
	}
	for i, kid := range s.ids {
		if kid != sl.KeyID {
			continue
		}
		n := s.keys[i].NonceSize()
		if len(sl.Box) < n {
			return nil, errors.New("sealed credentials are truncated")
		}
		plain, err := s.keys[i].Open(nil, sl.Box[:n], sl.Box[n:], []byte(id))
		if err != nil {
			return nil, errors.New("sealed credentials do not open")
		}
		var h http.Header
		return h, json.Unmarshal(plain, &h)
	}
	return nil, fmt.Errorf("sealed credentials use key %s, which is not configured", sl.KeyID)
}
