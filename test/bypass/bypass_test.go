// Package bypass holds the bypass corpus: one table, each row an attack on
// the four eyes, sent through a real gateway to real backends that honour
// the trick it tries. For each row that is one call, the same call is also
// sent straight to the backend first, which must do the harm: so the row
// shows a trick the backend really honours, and that the gateway stops it.
package bypass

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/tidwall/gjson"
	"golang.org/x/text/encoding/unicode"

	"github.com/approval-gateway/gateway/internal/caddykit"
	"github.com/approval-gateway/gateway/internal/testkit"
	"github.com/approval-gateway/gateway/module/identity/subject"
	"github.com/dunglas/httpsfv"

	_ "github.com/approval-gateway/gateway/module"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
)

const secret = "bypass-corpus-secret-bypass-corpus-secret"

// Identities: alice and josé request (and are approvers, so they could
// approve their own request if a spelling fooled the gateway); bob,
// carol, zoë and "eve, frank" approve. A token for any spelling of one of
// them (another case, NFD, fullwidth, white space) carries that one's
// groups, as an identity provider passing on one account's variants
// would; "Alice" is another account, without groups.
var groups = map[string][]string{
	"alice":      {"it-ops", "approvers"},
	"josé":       {"it-ops", "approvers"},
	"bob":        {"approvers", "device-approvers", "app-approvers"},
	"carol":      {"approvers"},
	"zoë":        {"approvers"},
	"eve, frank": {"approvers"},
}

// accounts are subjects that are their own account, whatever another
// subject they could be a spelling of.
var accounts = map[string][]string{"Alice": {}}

// groupsOf are the groups a token for sub carries.
func groupsOf(sub string) []string {
	if g, ok := accounts[sub]; ok {
		return g
	}
	return groups[subject.Key(sub, false)]
}

// call is one HTTP call of an attack.
type call struct {
	method, target string
	header         map[string]string
	body           []byte
	as             string // the token's subject; "" sends no token
}

// attack is one row of the corpus.
type attack struct {
	name string
	// gateway is the configuration the attack goes through: "" (the
	// defaults), "judge" (method_override and ambiguous_paths judge),
	// "go" (in front of the Go backend), "handle" (two backends behind
	// handle blocks).
	gateway string
	// send is the attacking call, answered status and code.
	send   call
	status int
	code   string
	// then, when set, carries on as an attacker would after the answer:
	// a parked call is approved and completed.
	then func(c *corpus, parked map[string]any)
	// harm says what the backend did that it must not have; "" when
	// nothing.
	harm func(s backendState) string
	// direct: the call sent straight to the backend does the harm.
	direct bool
	// kept, when set, says what the gateway kept that it must not have
	// (an action it took on a request); "" when nothing.
	kept func(c *corpus, parked map[string]any) string
}

func TestBypassCorpus(t *testing.T) {
	c := newCorpus(t)
	wipe := []byte(`{"wiped":true}`)
	utf16 := func(e unicode.Endianness, bom unicode.BOMPolicy, b []byte) []byte {
		out, err := unicode.UTF16(e, bom).NewEncoder().Bytes(b)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	deep := []byte(`{"wiped":true,"padding":` + strings.Repeat("[", 10001) + strings.Repeat("]", 10001) + `}`)
	patchDevice := func(ct string, body []byte, hdr ...string) call {
		h := map[string]string{"Content-Type": ct}
		for i := 0; i+1 < len(hdr); i += 2 {
			h[hdr[i]] = hdr[i+1]
		}
		return call{method: "PATCH", target: "/devices/2", header: h, body: body, as: "alice"}
	}
	override := func(method, target, hdr, to string, body []byte) call {
		return call{method: method, target: target, header: map[string]string{hdr: to, "Content-Type": "application/json"}, body: body, as: "alice"}
	}
	spoofed := map[string]string{
		"Approval-Approved-By": "bob, carol", "Approval-Request-Id": "0190c5a2-0000-7000-8000-000000000000",
		"Idempotency-Key": "0190c5a2-0000-7000-8000-000000000000", "Approval-Attestation": "eyJhbGciOiJub25lIn0.e30.",
		"Content-Type": "application/json",
	}

	attacks := []attack{
		// 1. Encoded bodies: the policy must see what the backend inflates
		// and decodes. Decoded, each one parks.
		{name: "gzip body", send: patchDevice("application/json", testkit.Compress(t, "gzip", wipe), "Content-Encoding", "gzip"), status: 202, harm: wiped("2"), direct: true},
		{name: "GZIP in upper case", send: patchDevice("application/json", testkit.Compress(t, "gzip", wipe), "Content-Encoding", "GZIP"), status: 202, harm: wiped("2"), direct: true},
		{name: "deflate body", send: patchDevice("application/json", testkit.Compress(t, "deflate", wipe), "Content-Encoding", "deflate"), status: 202, harm: wiped("2"), direct: true},
		{name: "br body", send: patchDevice("application/json", testkit.Compress(t, "br", wipe), "Content-Encoding", "br"), status: 202, harm: wiped("2"), direct: true},
		{name: "zstd body", send: patchDevice("application/json", testkit.Compress(t, "zstd", wipe), "Content-Encoding", "zstd"), status: 202, harm: wiped("2"), direct: true},
		{name: "UTF-16 JSON (charset=utf-16)", send: patchDevice("application/json; charset=utf-16", utf16(unicode.LittleEndian, unicode.UseBOM, wipe)), status: 202, harm: wiped("2"), direct: true},
		{name: "UTF-16BE JSON", send: patchDevice("application/json; charset=utf-16be", utf16(unicode.BigEndian, unicode.IgnoreBOM, wipe)), status: 202, harm: wiped("2"), direct: true},
		{name: "UTF-8 BOM before the JSON", send: patchDevice("application/json", append([]byte{0xef, 0xbb, 0xbf}, wipe...)), status: 202, harm: wiped("2"), direct: true},
		{name: "JSON deeper than Go's parser goes", send: patchDevice("application/json", deep), status: 400, code: "invalid_body", harm: wiped("2"), direct: true},
		{name: "member names differing in case (Go's encoding/json)", gateway: "go", send: patchDevice("application/json", []byte(`{"wiped":false,"Wiped":true}`)), status: 400, code: "invalid_body", harm: goWiped, direct: true},
		{name: "repeated member name (a first-wins parser)", gateway: "go", send: call{method: "PUT", target: "/devices/2", header: map[string]string{"Content-Type": "application/json"}, body: []byte(`{"wiped":true,"wiped":false}`), as: "alice"}, status: 400, code: "invalid_body", harm: goWiped, direct: true},
		{name: "JSON sent as text/plain to a backend that ignores the type", gateway: "go", send: patchDevice("text/plain", wipe), status: 202, harm: goWiped, direct: true},
		{name: "a member name in upper case (Go's encoding/json)", gateway: "go", send: patchDevice("application/json", []byte(`{"WIPED":true}`)), status: 202, harm: goWiped, direct: true},
		{name: "JSON inside a form value", gateway: "go", send: call{method: "PUT", target: "/devices/2", header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, body: []byte(`x={"wiped":true}`), as: "alice"}, status: 400, code: "invalid_body", harm: goWiped, direct: true},
		{name: "JSON before a form field", gateway: "go", send: patchDevice("application/x-www-form-urlencoded", []byte(`{"wiped":true}&x=1`)), status: 400, code: "invalid_body", harm: goWiped, direct: true},
		{name: "JSON in a gzip member's file name", gateway: "go", send: call{method: "PUT", target: "/devices/2", header: map[string]string{"Content-Type": "application/json", "Content-Encoding": "gzip"}, body: gzipNamed(t, []byte(`{"wiped":false}`), `{"wiped":true}`), as: "alice"}, status: 400, code: "invalid_body", harm: goWiped, direct: true},

		// 2. Method overrides: judged as the method sent, executed as the
		// one asked for.
		{name: "X-HTTP-Method-Override", send: override("POST", "/devices/2", "X-HTTP-Method-Override", "PATCH", wipe), status: 400, code: "method_override", harm: wiped("2"), direct: true},
		{name: "X-HTTP-Method", send: override("POST", "/devices/2", "X-HTTP-Method", "PATCH", wipe), status: 400, code: "method_override", harm: wiped("2"), direct: true},
		{name: "X-Method-Override", send: override("POST", "/devices/2", "X-Method-Override", "PATCH", wipe), status: 400, code: "method_override", harm: wiped("2"), direct: true},
		{name: "_method query field", send: call{method: "POST", target: "/devices/2?_method=PATCH", header: map[string]string{"Content-Type": "application/json"}, body: wipe, as: "alice"}, status: 400, code: "method_override", harm: wiped("2"), direct: true},
		{name: "_method form field", send: call{method: "POST", target: "/devices/2", header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, body: []byte("_method=PATCH&wiped=true"), as: "alice"}, status: 400, code: "method_override", harm: wiped("2"), direct: true},
		{name: "override on a GET (never judged)", send: call{method: "GET", target: "/devices/2", header: map[string]string{"X-HTTP-Method-Override": "DELETE"}}, status: 400, code: "method_override", harm: deleted("devices", "2"), direct: true},
		{name: "_method in the form body of a GET", send: call{method: "GET", target: "/roles/2", header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, body: []byte("_method=DELETE")}, status: 400, code: "method_override", harm: deleted("roles", "2"), direct: true},
		{name: "_method in a JSON body", send: call{method: "POST", target: "/devices/1", header: map[string]string{"Content-Type": "application/json"}, body: []byte(`{"_method":"DELETE"}`), as: "alice"}, status: 400, code: "method_override", harm: deleted("devices", "1"), direct: true},
		{name: "POST parked and approved, replayed as the DELETE it asked for", send: override("POST", "/roles/2", "X-HTTP-Method-Override", "DELETE", []byte(`{}`)), status: 400, code: "method_override", then: approveAndComplete("bob", "carol"), harm: deleted("roles", "2"), direct: true},
		{name: "judged override: the PATCH parks", gateway: "judge", send: override("POST", "/devices/2", "X-HTTP-Method-Override", "PATCH", wipe), status: 202, harm: wiped("2")},
		{name: "judged override: the DELETE is denied", gateway: "judge", send: override("POST", "/roles/2", "X-HTTP-Method-Override", "DELETE", []byte(`{}`)), status: 403, code: "denied", then: approveAndComplete("bob", "carol"), harm: deleted("roles", "2")},
		{name: "judged override on a DELETE, which a POST-only backend executes as the DELETE", gateway: "judge-post-only", send: override("DELETE", "/devices/1", "X-HTTP-Method-Override", "PATCH", nil), status: 400, code: "method_override", harm: deleted("devices", "1"), direct: true},
		{name: "judged override naming an unknown method", gateway: "judge", send: override("DELETE", "/devices/1", "X-HTTP-Method-Override", "FOO", nil), status: 400, code: "method_override", harm: deleted("devices", "1"), direct: true},
		{name: "judged override: a _method form field is denied", gateway: "judge", send: call{method: "POST", target: "/roles/2", header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, body: []byte("_method=DELETE"), as: "alice"}, status: 403, code: "denied", harm: deleted("roles", "2")},

		// 3. Trust headers: a client's own claim of approval never
		// reaches the backend.
		{name: "spoofed approval headers on an allowed call", send: call{method: "POST", target: "/devices/1", header: spoofed, body: []byte(`{"checkin":true}`), as: "alice"}, status: 200, harm: trustHeaders, direct: true},

		// 4. Directive order: the gateway guards handle blocks.
		{name: "unauthenticated call under a handle block", gateway: "handle", send: call{method: "PATCH", target: "/api/devices/2", header: map[string]string{"Content-Type": "application/json"}, body: wipe}, status: 401, code: "unauthenticated", harm: wiped("2")},

		// 5. One person, one approval: subjects in another case.
		{name: "requester approves her own request as Alice", send: call{method: "PATCH", target: "/roles/2", header: map[string]string{"Content-Type": "application/json"}, body: []byte(`{"name":"root"}`), as: "alice"}, status: 202,
			then: approveAndComplete("Alice", "bob"), harm: changed("roles", "2")},
		{name: "bob and Bob meet a two-approver quorum", send: call{method: "PATCH", target: "/roles/2", header: map[string]string{"Content-Type": "application/json"}, body: []byte(`{"name":"root"}`), as: "alice"}, status: 202,
			then: approveAndComplete("bob", "Bob"), harm: changed("roles", "2")},

		// 6. One person is one person: every spelling that could be the
		// same person is one for refusals (RFC 8265's folding).
		{name: "requester josé approves her own request as jose\u0301 (NFD)", send: roleChange("jos\u00e9"), status: 202,
			then: approveAndComplete("jose\u0301", "bob"), harm: changed("roles", "2")},
		{name: "zo\u00eb and zoe\u0308 meet a two-approver quorum", send: roleChange("alice"), status: 202,
			then: approveAndComplete("zo\u00eb", "zoe\u0308"), harm: changed("roles", "2")},
		{name: "bob and fullwidth \uff42\uff4f\uff42 meet a two-approver quorum", send: roleChange("alice"), status: 202,
			then: approveAndComplete("bob", "\uff42\uff4f\uff42"), harm: changed("roles", "2")},
		{name: `bob and "bob " meet a two-approver quorum`, send: roleChange("alice"), status: 202,
			then: approveAndComplete("bob", "bob "), harm: changed("roles", "2")},
		{name: `bob and " bob" meet a two-approver quorum`, send: roleChange("alice"), status: 202,
			then: approveAndComplete("bob", " bob"), harm: changed("roles", "2")},
		{name: `bob and "bob\t" meet a two-approver quorum`, send: roleChange("alice"), status: 202,
			then: approveAndComplete("bob", "bob\t"), harm: changed("roles", "2")},

		// 7. Only that person: grants compare the subject as issued.
		// "Alice" is another account than alice (OIDC's sub is
		// case-sensitive), with no groups.
		{name: "Alice, another account, reads alice's request", send: roleChange("alice"), status: 202,
			kept: actedAs("Alice", "GET", "")},
		{name: "Alice, another account, cancels alice's request", send: roleChange("alice"), status: 202,
			kept: actedAs("Alice", "POST", "/cancel")},
		{name: "a subject of one NUL character is an identity", send: call{method: "POST", target: "/devices/1", header: map[string]string{"Content-Type": "application/json"}, body: []byte(`{"checkin":true}`), as: "\x00"},
			status: 401, code: "unauthenticated", harm: changed("devices", "1"), direct: true},
		{name: `one approver named "eve, frank" reads as two to the backend`, send: roleChange("alice"), status: 202,
			then: approveAndComplete("eve, frank", "bob"), harm: approversRead(2)},

		// 8. Requests belong to their site: approved at one, completed at
		// the other and replayed to its backend.
		{name: "approved at site A, completed at site B", gateway: "sites", send: roleChange("alice"), status: 202,
			then: approveThenCompleteAt("B", "bob", "carol"), harm: changed("roles", "2")},

		// 9. The approval API is as strict as the gateway: an approval
		// from a body or a path read leniently is no approval.
		{name: "approve without a Content-Type", send: roleChange("alice"), status: 202,
			then: approveRaw("bob", "", nil, `{"notes":"ok"}`), kept: approvalBy("bob")},
		{name: "approve as text/plain", send: roleChange("alice"), status: 202,
			then: approveRaw("bob", "", map[string]string{"Content-Type": "text/plain"}, `{"notes":"ok"}`), kept: approvalBy("bob")},
		{name: "approve with an unknown member", send: roleChange("alice"), status: 202,
			then: approveRaw("bob", "", jsonType, `{"notes":"ok","bogus":1}`), kept: approvalBy("bob")},
		{name: "approve with a repeated member", send: roleChange("alice"), status: 202,
			then: approveRaw("bob", "", jsonType, `{"notes":"a","notes":"b"}`), kept: approvalBy("bob")},
		{name: "approve with notes that are not UTF-8", send: roleChange("alice"), status: 202,
			then: approveRaw("bob", "", jsonType, "{\"notes\":\"ok\xff\"}"), kept: approvalBy("bob")},
		{name: "approve through a path with a dot segment (…/x/../approve)", send: roleChange("alice"), status: 202,
			then: approveRaw("bob", "/x/..", jsonType, `{"notes":"ok"}`), kept: approvalBy("bob")},
		{name: "approve through a path with a doubled slash", send: roleChange("alice"), status: 202,
			then: approveRaw("bob", "/", jsonType, `{"notes":"ok"}`), kept: approvalBy("bob")},

		// 6. The replay sends the target that was approved, byte for byte.
		{name: "encoded slash in a judged path", send: call{method: "PUT", target: "/apps/2%2Fversion", header: map[string]string{"Content-Type": "application/json"}, body: []byte(`{"value":"evil"}`), as: "alice"}, status: 400, code: "ambiguous_path",
			then: approveAndComplete("bob"), harm: changed("apps", "2")},
		{name: "encoded slash judged and replayed verbatim", gateway: "judge", send: call{method: "PUT", target: "/apps/2%2Fversion", header: map[string]string{"Content-Type": "application/json"}, body: []byte(`{"value":"evil"}`), as: "alice"}, status: 202,
			then: approveAndComplete("bob"), harm: changed("apps", "2")},

		// 7. The library matches paths as routers do: in any case.
		{name: "path in upper case (DEVICES)", send: call{method: "PATCH", target: "/DEVICES/2", header: map[string]string{"Content-Type": "application/json"}, body: wipe, as: "alice"}, status: 202, harm: wiped("2"), direct: true},
	}

	for _, a := range attacks {
		t.Run(a.name, func(t *testing.T) {
			c.use(t, a.gateway)
			if a.direct {
				c.reset(t)
				c.send(t, c.backendURL(a.gateway), a.send)
				if c.harm(t, a.gateway, a.harm) == "" {
					t.Fatalf("sent straight to the backend, the call did no harm: the backend does not honour this trick")
				}
			}
			c.reset(t)
			status, body := c.send(t, c.gateway, a.send)
			got, _ := body["error"].(map[string]any)
			if status != a.status || (a.code != "" && got["code"] != a.code) {
				t.Errorf("the gateway answered %d %v, want %d %s", status, body, a.status, a.code)
			}
			if a.then != nil {
				a.then(c, body)
			}
			if a.harm != nil {
				if h := c.harm(t, a.gateway, a.harm); h != "" {
					t.Fatalf("the backend %s", h)
				}
			}
			if a.kept != nil {
				if k := a.kept(c, body); k != "" {
					t.Fatalf("the gateway %s", k)
				}
			}
		})
	}
}

// jsonType is an action body's type.
var jsonType = map[string]string{"Content-Type": "application/json"}

// roleChange is a change to role 2 by who, which needs two approvers.
func roleChange(who string) call {
	return call{method: "PATCH", target: "/roles/2", header: jsonType, body: []byte(`{"name":"root"}`), as: who}
}

// approveRaw has who approve a parked request with a body and headers as
// given, at the approve route with between spelt after the id, following
// redirects as browsers and curl -L do (a 307 or 308 is sent again with
// its body).
func approveRaw(who, between string, header map[string]string, body string) func(c *corpus, parked map[string]any) {
	return func(c *corpus, parked map[string]any) {
		id, _ := parked["id"].(string)
		req, err := http.NewRequest("POST", c.gateway+"/.approvals/api/v1/requests/"+id+between+"/approve", bytes.NewReader([]byte(body)))
		if err != nil {
			c.t.Fatal(err)
		}
		for k, v := range header {
			req.Header[k] = []string{v}
		}
		req.Header.Set("Authorization", "Bearer "+token(c.t, who))
		resp, err := client.Do(req)
		if err != nil {
			c.t.Fatal(err)
		}
		resp.Body.Close()
	}
}

// approvalBy reports an approval recorded from who on the parked request.
func approvalBy(who string) func(c *corpus, parked map[string]any) string {
	return func(c *corpus, parked map[string]any) string {
		id, _ := parked["id"].(string)
		_, rec := c.send(c.t, c.gateway, call{method: "GET", target: "/.approvals/api/v1/requests/" + id, as: "alice"})
		reqs, _ := rec["approvers"].([]any)
		for _, q := range reqs {
			as, _ := q.(map[string]any)["approvals"].([]any)
			for _, a := range as {
				if a.(map[string]any)["subject"] == who {
					return fmt.Sprintf("recorded an approval by %s, with notes %q", who, a.(map[string]any)["notes"])
				}
			}
		}
		return ""
	}
}

// actedAs reports that who could read (GET) or act on (POST action) the
// parked request.
func actedAs(who, method, action string) func(c *corpus, parked map[string]any) string {
	return func(c *corpus, parked map[string]any) string {
		id, _ := parked["id"].(string)
		status, _ := c.send(c.t, c.gateway, call{method: method, target: "/.approvals/api/v1/requests/" + id + action, as: who})
		if status == http.StatusOK {
			return fmt.Sprintf("let %q %s %s the requester's request", who, method, action)
		}
		return ""
	}
}

// approveThenCompleteAt has the approvers approve the parked request at
// site A, then its requester complete it at site B.
func approveThenCompleteAt(site string, approvers ...string) func(c *corpus, parked map[string]any) {
	return func(c *corpus, parked map[string]any) {
		id, _ := parked["id"].(string)
		for _, who := range approvers {
			c.send(c.t, c.gateway, call{method: "POST", target: "/.approvals/api/v1/requests/" + id + "/approve", header: jsonType, body: []byte(`{"notes":"ok"}`), as: who})
		}
		c.send(c.t, c.siteB, call{method: "POST", target: "/.approvals/api/v1/requests/" + id + "/complete", as: "alice"})
	}
}

// approversRead reports an executed mutation whose Approval-Approved-By,
// read as the Structured Field List it is, names another number of
// approvers than n.
func approversRead(n int) func(s backendState) string {
	return func(s backendState) string {
		for _, e := range s.Log {
			if e.ApprovedBy == nil {
				continue
			}
			list, err := httpsfv.UnmarshalList([]string{*e.ApprovedBy})
			if err != nil || len(list) != n {
				return fmt.Sprintf("reads %q as %d approvers (%v), not %d", *e.ApprovedBy, len(list), err, n)
			}
		}
		return ""
	}
}

// approveAndComplete has the approvers approve a parked request, then its
// requester complete it, as an attacker would; refusals are fine.
func approveAndComplete(approvers ...string) func(c *corpus, parked map[string]any) {
	return func(c *corpus, parked map[string]any) {
		id, _ := parked["id"].(string)
		if id == "" {
			return
		}
		for _, who := range approvers {
			c.send(c.t, c.gateway, call{method: "POST", target: "/.approvals/api/v1/requests/" + id + "/approve", header: map[string]string{"Content-Type": "application/json"}, body: []byte(`{"notes":"ok"}`), as: who})
		}
		requester, _ := parked["requester"].(map[string]any)
		sub, _ := requester["subject"].(string)
		c.send(c.t, c.gateway, call{method: "POST", target: "/.approvals/api/v1/requests/" + id + "/complete", as: sub})
	}
}

// backendState is what the backends report: the Express backend's objects
// and the mutations it executed, and the Go backend's wipes.
type backendState struct {
	State map[string]map[string]map[string]any `json:"state"`
	Log   []struct {
		Method         string  `json:"method"`
		URL            string  `json:"url"`
		ApprovedBy     *string `json:"approved_by"`
		RequestID      *string `json:"request_id"`
		IdempotencyKey *string `json:"idempotency_key"`
		Attest         *string `json:"attestation"`
	} `json:"log"`
	goWipes int
}

func wiped(id string) func(backendState) string {
	return func(s backendState) string {
		if d, ok := s.State["devices"][id]; ok && d["wiped"] != false {
			return fmt.Sprintf("wiped device %s (wiped: %v)", id, d["wiped"])
		}
		return ""
	}
}

func deleted(kind, id string) func(backendState) string {
	return func(s backendState) string {
		if _, ok := s.State[kind][id]; !ok {
			return fmt.Sprintf("deleted %s %s", kind, id)
		}
		return ""
	}
}

func changed(kind, id string) func(backendState) string {
	return func(s backendState) string {
		for _, e := range s.Log {
			if e.Method != "GET" && (strings.HasPrefix(strings.ToLower(e.URL), "/"+kind+"/"+id+"/") || strings.EqualFold(e.URL, "/"+kind+"/"+id)) {
				return fmt.Sprintf("executed %s %s", e.Method, e.URL)
			}
		}
		return ""
	}
}

func goWiped(s backendState) string {
	if s.goWipes > 0 {
		return "(the Go backend) wiped device 2"
	}
	return ""
}

func trustHeaders(s backendState) string {
	for _, e := range s.Log {
		for name, v := range map[string]*string{"Approval-Approved-By": e.ApprovedBy, "Approval-Request-Id": e.RequestID,
			"Idempotency-Key": e.IdempotencyKey, "Approval-Attestation": e.Attest} {
			if v != nil {
				return fmt.Sprintf("received the client's %s: %q on %s %s", name, *v, e.Method, e.URL)
			}
		}
	}
	return ""
}

// corpus runs the gateway configurations and the two backends.
type corpus struct {
	t       *testing.T
	gateway string // the gateway's base URL
	express string
	// expressPostOnly honours method overrides on POST alone.
	expressPostOnly string
	goAPI           *httptest.Server
	// siteB is the base URL of the second site of the "sites" gateway.
	siteB   string
	goMu    sync.Mutex
	goWipes int
	store   string
	polDir  string
	loaded  string
}

func newCorpus(t *testing.T) *corpus {
	c := &corpus{t: t, store: t.TempDir(), express: startExpress(t, "any-method"), expressPostOnly: startExpress(t, "post-only"), loaded: "none"}
	c.goAPI = httptest.NewServer(http.HandlerFunc(c.serveGo))
	t.Cleanup(c.goAPI.Close)

	// The corpus policy with the shipped library's helpers and config.
	c.polDir = t.TempDir()
	for src, dst := range map[string]string{"policy.rego": "approval.rego", "../../policies/approval/lib.rego": "approval/lib.rego",
		"../../policies/config/data.json": "config/data.json"} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(c.polDir, dst)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(c.polDir, dst), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c.gateway, c.siteB = "http://"+testkit.Addr(t), "http://"+testkit.Addr(t)
	t.Cleanup(func() { _ = caddy.Stop() })
	return c
}

// serveGo is a Go admin API as many are written: PATCH decodes the body
// into a struct with encoding/json's Decoder (member names match in any
// case; what follows the value is not read), PUT reads the one field it
// needs with gjson (the first of repeated names wins); neither looks at
// the Content-Type or the Content-Encoding.
func (c *corpus) serveGo(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	wipe := false
	switch {
	case r.URL.Path == "/__reset":
		c.goMu.Lock()
		c.goWipes = 0
		c.goMu.Unlock()
	case r.Method == "PATCH" && strings.HasPrefix(r.URL.Path, "/devices/"):
		var in struct{ Wiped bool }
		if err := json.NewDecoder(bytes.NewReader(body)).Decode(&in); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		wipe = in.Wiped
	case r.Method == "PUT" && strings.HasPrefix(r.URL.Path, "/devices/"):
		wipe = gjson.GetBytes(body, "wiped").Bool()
	}
	if wipe {
		c.goMu.Lock()
		c.goWipes++
		c.goMu.Unlock()
	}
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, "{}")
}

func (c *corpus) backendURL(gateway string) string {
	switch gateway {
	case "go":
		return c.goAPI.URL
	case "judge-post-only":
		return c.expressPostOnly
	}
	return c.express
}

// use loads the gateway configuration named, unless it is loaded.
func (c *corpus) use(t *testing.T, name string) {
	t.Helper()
	if c.loaded == name {
		return
	}
	host := strings.TrimPrefix(c.gateway, "http://")
	express, goAPI := strings.TrimPrefix(c.express, "http://"), strings.TrimPrefix(c.goAPI.URL, "http://")
	extra, upstream := "", "reverse_proxy "+express
	switch name {
	case "judge":
		extra = "method_override judge\n\t\tambiguous_paths judge"
	case "judge-post-only":
		extra, upstream = "method_override judge", "reverse_proxy "+strings.TrimPrefix(c.expressPostOnly, "http://")
	case "go":
		upstream = "reverse_proxy " + goAPI
	case "handle":
		upstream = fmt.Sprintf("handle /api/* {\n\t\turi strip_prefix /api\n\t\treverse_proxy %s\n\t}\n\thandle {\n\t\treverse_proxy %s\n\t}", express, goAPI)
	}
	port, _ := strconv.Atoi(host[strings.LastIndexByte(host, ':')+1:])
	block := func(extra, upstream string) string {
		return fmt.Sprintf(`	approval_gateway {
		store embedded %s
		identity jwt {
			secret %s
			issuer https://idp.test
		}
		policies %s
		%s
	}
	%s`, c.store, secret, c.polDir, extra, upstream)
	}
	text := caddykit.Site(port, "", block(extra, upstream))
	if name == "sites" {
		// Two sites on one store and prefix: A before the Go backend, B
		// before the Express one.
		text = caddykit.Site(port, "", block("site A", "reverse_proxy "+goAPI)) +
			fmt.Sprintf("\n%s {\n%s\n}\n", c.siteB, block("site B", "reverse_proxy "+express))
	}
	caddykit.Load(c.t, c.gateway, text)
	c.loaded = name
}

// reset restores both backends' seed state, and ends pending requests so
// that a row's resource is free.
func (c *corpus) reset(t *testing.T) {
	t.Helper()
	for _, u := range []string{c.express + "/__reset", c.expressPostOnly + "/__reset", c.goAPI.URL + "/__reset"} {
		resp, err := client.Post(u, "application/json", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	for sub := range groups {
		_, list := c.send(t, c.gateway, call{method: "GET", target: "/.approvals/api/v1/requests?view=mine&status=needs_approval,approved", as: sub})
		reqs, _ := list["requests"].([]any)
		for _, r := range reqs {
			id, _ := r.(map[string]any)["id"].(string)
			c.send(t, c.gateway, call{method: "POST", target: "/.approvals/api/v1/requests/" + id + "/cancel", as: sub})
		}
	}
}

// harm reads the backends' state and applies harm.
func (c *corpus) harm(t *testing.T, gateway string, harm func(backendState) string) string {
	t.Helper()
	base := c.express
	if gateway == "judge-post-only" {
		base = c.expressPostOnly
	}
	resp, err := client.Get(base + "/__log")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var s backendState
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		t.Fatal(err)
	}
	c.goMu.Lock()
	s.goWipes = c.goWipes
	c.goMu.Unlock()
	return harm(s)
}

// send makes one call with the raw target as given (escapes and case
// kept) and returns the status and the JSON answer.
func (c *corpus) send(t *testing.T, base string, cl call) (int, map[string]any) {
	t.Helper()
	u, err := url.Parse(base + cl.target)
	if err != nil {
		t.Fatal(err)
	}
	req := &http.Request{Method: cl.method, URL: u, Header: http.Header{}, Host: u.Host}
	if cl.body != nil {
		req.Body = io.NopCloser(bytes.NewReader(cl.body))
		req.ContentLength = int64(len(cl.body))
	}
	for k, v := range cl.header {
		req.Header[k] = []string{v} // as spelt: some tricks are in the spelling
	}
	if cl.as != "" {
		req.Header.Set("Authorization", "Bearer "+token(t, cl.as))
		if cl.method != "GET" && !strings.HasPrefix(cl.target, "/.approvals/") {
			req.Header.Set("Approval-Justification", "bypass corpus")
		}
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var body map[string]any
	_ = json.Unmarshal(raw, &body)
	return resp.StatusCode, body
}

var client = &http.Client{Timeout: 30 * time.Second}

// token mints a real HS256 token for sub, with its groups (groupsOf).
func token(t *testing.T, sub string) string {
	return testkit.Token(t, secret, "https://idp.test", sub, groupsOf(sub)...)
}

// startExpress runs the Express backend, honouring overrides on any method
// or ("post-only") on POST alone, and returns its base URL. Without
// Node.js the corpus skips, except in CI, where it must run.
func startExpress(t *testing.T, overrides string) string {
	t.Helper()
	return "http://127.0.0.1:" + testkit.NodeApp(t, "backend", "express", nil, "server.mjs", "0", overrides)
}

// gzipNamed gzips b with name in the member's file name field, which is
// stored as it is.
func gzipNamed(t *testing.T, b []byte, name string) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Name = name
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
