// Command adminapi serves the example admin API, for use behind the
// gateway's root Caddyfile.
package main

import (
	"flag"
	"log"
	"net/http"
	"os"

	"github.com/approval-gateway/gateway/examples/adminapi"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:9000", "address to listen on")
	flag.Parse()
	api := adminapi.New()
	api.Log = log.New(os.Stderr, "adminapi: ", log.LstdFlags)
	log.Printf("example admin API on http://%s", *listen)
	log.Fatal(http.ListenAndServe(*listen, api))
}
