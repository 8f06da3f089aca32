package main

import (
	"strings"
	"testing"
	"time"

	"github.com/approval-gateway/gateway/module/identity"
)

func TestMintedTokensVerify(t *testing.T) {
	secret := strings.Repeat("k", 32)
	tok, err := mintToken(secret, "alice", splitList("approvers, ops,,"), "iss-1", "aud-1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	v, err := identity.New(identity.Options{Secret: []byte(secret), Issuer: "iss-1", Audience: "aud-1"})
	if err != nil {
		t.Fatal(err)
	}
	id, err := v.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	if id.Subject != "alice" || strings.Join(id.Groups, ",") != "approvers,ops" {
		t.Fatalf("%+v", id)
	}
	for name, f := range map[string]func() error{
		"no subject": func() error { _, err := mintToken(secret, "", nil, "", "", time.Hour); return err },
		"no ttl":     func() error { _, err := mintToken(secret, "a", nil, "", "", 0); return err },
	} {
		if f() == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
