// Command adminapi serves the example admin API, for use behind the
// gateway's root Caddyfile. With --require-attestation, the calls that
// must be approved (wipe, retire, delete, scripts, roles) are carried out
// only with the gateway's attestation.
package main

import (
	"context"
	"flag"
	"log"
	"net/http"
	"os"

	"github.com/approval-gateway/gateway/examples/adminapi"
	"github.com/approval-gateway/gateway/examples/attested"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:9000", "address to listen on")
	jwks := flag.String("require-attestation", "", "the gateway's JWKS URL (http://localhost:8080/.approvals/.well-known/jwks.json): protected calls need its attestation")
	issuer := flag.String("issuer", "approval-gateway", "the attestations' issuer (the gateway's attestation issuer)")
	audience := flag.String("audience", "default", "the attestations' audience (the gateway's site, or its attestation audience)")
	flag.Parse()
	var o adminapi.Options
	if *jwks != "" {
		protect, err := attested.Require(context.Background(), *jwks, *issuer, *audience)
		if err != nil {
			log.Fatalf("--require-attestation: %v", err)
		}
		o.Protect = protect
		log.Printf("wipe, retire, delete and changes to scripts and roles need an attestation from %s", *jwks)
	}
	api := adminapi.NewWith(o)
	api.Log = log.New(os.Stderr, "adminapi: ", log.LstdFlags)
	log.Printf("example admin API on http://%s", *listen)
	log.Fatal(http.ListenAndServe(*listen, api))
}
