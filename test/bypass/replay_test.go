package bypass

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/approval-gateway/gateway/internal/caddykit"
	"github.com/approval-gateway/gateway/internal/testkit"
	"golang.org/x/crypto/bcrypt"
)

// The replay is the stored call: whichever way a parked call is completed
// (the API's complete, the console's form, or the approval that
// auto-completes it), what reaches the backend is the parked call and
// nothing of the call that completed it but its Authorization. Each
// completion below carries every trick at once: a query of its own, its
// own Host and headers (a method override among them), a chunked body
// with trailer fields (a method override again), Expect: 100-continue.
// Each trick is first sent straight to the recording backend, which
// receives it; then a parked call is completed with it through the
// gateway, and the replay the backend received is compared with the
// parked call as the backend receives it when sent straight to it: the
// request line and body byte for byte, the same framing (Content-Length,
// never chunked, no trailers), the same header fields but for the
// credentials and the justification, plus the gateway's own (the
// attestation and request headers) and the proxy's (X-Forwarded-*).

// replayPolicy parks calls to /scripts for one approver, and calls to
// /autoscripts to be replayed by the approval that meets the quorum.
const replayPolicy = `package approval

decision := {"action": "require_approval", "policy": "scripts", "resource": input.request.raw_path,
	"approvers": [{"group": "approvers", "required": 1}], "complete": _complete} if {
	input.request.segments[0] in {"scripts", "autoscripts"}
}

default _complete := "manual"

_complete := "auto" if input.request.segments[0] == "autoscripts"
`

const scriptBody = `{"script":"rotate-local-admin","target":"all-laptops"}`

// replayGateway runs a gateway behind basic_auth (an upstream identity,
// so that the console takes it from each request) with the console on,
// in front of rec, on every host name at its port.
func replayGateway(t *testing.T, rec *recorder) string {
	hash, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "approval.rego"), []byte(replayPolicy), 0o644); err != nil {
		t.Fatal(err)
	}
	port := testkit.Port(t)
	caddykit.Load(t, "", fmt.Sprintf(`{
	admin off
	persist_config off
	auto_https off
}

http://:%d {
	bind 127.0.0.1
	basic_auth {
		alice %s
		bob %s
	}
	approval_gateway {
		store embedded %s
		identity placeholder {http.auth.user.id} {
			groups_header X-Test-Groups
		}
		policies %s
		console
	}
	reverse_proxy %s
}
`, port, hash, hash, t.TempDir(), dir, rec.addr()))
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	testkit.WaitFor(t, func() bool {
		s, _ := testkit.RawCall(t, addr, "GET /.approvals/healthz HTTP/1.1\r\nHost: x\r\nAuthorization: "+basic("alice")+"\r\nConnection: close\r\n\r\n")
		return s == 200
	})
	return addr
}

func basic(user string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":pw"))
}

// parkCall is a call that the policy parks, as its bytes.
func parkCall(target string) string {
	return "POST " + target + " HTTP/1.1\r\nHost: admin.example\r\nAuthorization: " + basic("alice") +
		"\r\nApproval-Justification: CHG-7 rotate the local admin password\r\nContent-Type: application/json\r\nX-Parked: yes\r\n" +
		fmt.Sprintf("Content-Length: %d\r\nConnection: close\r\n\r\n%s", len(scriptBody), scriptBody)
}

// trick is a completing call with every trick: its own query, Host and
// headers, a method override as a header and as a trailer field, a
// chunked body and Expect: 100-continue.
func trick(target, auth, contentType, body string, extra ...string) string {
	return "POST " + target + " HTTP/1.1\r\nHost: complete.example\r\nAuthorization: " + auth + "\r\n" +
		strings.Join(extra, "") +
		"Content-Type: " + contentType + "\r\nX-Smuggled: from-the-complete-call\r\nX-HTTP-Method-Override: DELETE\r\n" +
		"Cookie: session=complete-call\r\nExpect: 100-continue\r\nTrailer: X-HTTP-Method-Override, X-Trailer-Smuggled\r\n" +
		"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" +
		fmt.Sprintf("%x\r\n%s\r\n0\r\nX-HTTP-Method-Override: DELETE\r\nX-Trailer-Smuggled: 1\r\n\r\n", len(body), body)
}

// differences lists how a replay differs from the parked call as the
// backend received it straight (reference): auth is the Authorization the
// replay must carry ("" for none).
func differences(reference, replay rawRequest, id, auth string) []string {
	var out []string
	if replay.line != reference.line {
		out = append(out, fmt.Sprintf("request line %q, parked %q", replay.line, reference.line))
	}
	if replay.chunked || len(replay.trailer) > 0 || string(replay.body) != string(reference.body) {
		out = append(out, fmt.Sprintf("body %q (chunked %v, trailers %q), parked %q", replay.body, replay.chunked, replay.trailer, reference.body))
	}
	want := map[string]bool{}
	for _, f := range reference.fields {
		n, _, _ := strings.Cut(f, ":")
		switch strings.ToLower(n) {
		case "authorization", "approval-justification", "connection":
			continue // never stored; a replay's connection is the proxy's
		}
		want[strings.ToLower(f)] = true
	}
	gateway := map[string]string{"idempotency-key": id, "approval-request-id": id, "approval-approved-by": `"bob"`, "authorization": auth}
	seen := map[string]bool{}
	for _, f := range replay.fields {
		n, v, _ := strings.Cut(f, ":")
		name, v := strings.ToLower(n), strings.TrimSpace(v)
		switch {
		case want[strings.ToLower(f)] || want[name+": "+strings.ToLower(v)]:
			seen[name+": "+strings.ToLower(v)] = true
		case gateway[name] != "" && gateway[name] == v, name == "approval-attestation", strings.HasPrefix(name, "x-forwarded-"), name == "via":
			// The gateway's own headers, and the proxy's.
		case name == "accept-encoding" && v == "gzip":
			// The proxy's transport asks for gzip (and decodes it).
		default:
			out = append(out, "the replay carries "+f)
		}
	}
	for f := range want {
		if !seen[f] {
			out = append(out, "the replay lacks "+f)
		}
	}
	if auth == "" && len(replay.field("Authorization")) > 0 {
		out = append(out, "the auto-complete replay carries an Authorization")
	}
	if att := replay.field("Approval-Attestation"); len(att) != 1 || attestedTarget(att[0]) != strings.Fields(reference.line)[1] {
		out = append(out, fmt.Sprintf("the attestation does not sign the parked target %s", strings.Fields(reference.line)[1]))
	}
	return out
}

// attestedTarget is the req.target an attestation signs (read, not
// verified: the gateway's attestation tests verify it).
func attestedTarget(jws string) string {
	parts := strings.Split(jws, ".")
	if len(parts) != 3 {
		return ""
	}
	b, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var c struct{ Req struct{ Target string } }
	_ = json.Unmarshal(b, &c)
	return c.Req.Target
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func TestReplayIsTheStoredCall(t *testing.T) {
	rec := startRecorder(t)
	gw := replayGateway(t, rec)
	groups := "X-Test-Groups: approvers\r\n"

	// The tricks reach a backend that is sent them straight.
	n := rec.count()
	testkit.RawCall(t, rec.addr(), trick("/scripts?x=2&_method=DELETE", basic("alice"), "application/json", `{"notes":"done"}`))
	got := rec.since(n)
	if len(got) != 1 || !got[0].chunked || !slices.Contains(got[0].trailer, "X-HTTP-Method-Override: DELETE") ||
		len(got[0].field("X-Smuggled")) != 1 || !strings.Contains(got[0].line, "_method=DELETE") {
		t.Fatalf("sent straight, the backend did not receive the tricks: %v", got)
	}

	park := func(t *testing.T, target string) (string, rawRequest) {
		t.Helper()
		n := rec.count()
		testkit.RawCall(t, rec.addr(), parkCall(target))
		ref := rec.since(n)
		if len(ref) != 1 {
			t.Fatalf("the reference call: %v", ref)
		}
		status, answer := testkit.RawCall(t, gw, parkCall(target))
		var parked struct{ ID string }
		if status != 202 || json.Unmarshal(answer, &parked) != nil {
			t.Fatalf("parking %s: %d %s", target, status, answer)
		}
		return parked.ID, ref[0]
	}
	approve := func(t *testing.T, id string) {
		t.Helper()
		status, answer := testkit.RawCall(t, gw, "POST /.approvals/api/v1/requests/"+id+"/approve HTTP/1.1\r\nHost: x\r\nAuthorization: "+basic("bob")+
			"\r\n"+groups+"Connection: close\r\n\r\n")
		if status != 200 {
			t.Fatalf("approve: %d %s", status, answer)
		}
	}
	replayOf := func(t *testing.T, n int) rawRequest {
		t.Helper()
		got := rec.since(n)
		if len(got) != 1 {
			t.Fatalf("the backend received %d calls", len(got))
		}
		return got[0]
	}
	check := func(t *testing.T, ref, replay rawRequest, id, auth string) {
		t.Helper()
		if diff := differences(ref, replay, id, auth); len(diff) > 0 {
			t.Errorf("the replay is not the parked call:\n\t%s\nreplay: %v\nparked: %v", strings.Join(diff, "\n\t"), replay, ref)
		}
	}

	for _, parked := range []string{"/scripts", "/scripts?", "/scripts?reason=cve-2026-1"} {
		for _, completeTarget := range []string{"complete?x=2&_method=DELETE", "complete?"} {
			t.Run("API complete "+completeTarget+" of "+parked, func(t *testing.T) {
				id, ref := park(t, parked)
				approve(t, id)
				n := rec.count()
				status, answer := testkit.RawCall(t, gw, trick("/.approvals/api/v1/requests/"+id+"/"+completeTarget, basic("alice"), "application/json", `{"notes":"done"}`))
				if status != 200 {
					t.Fatalf("complete: %d %s", status, answer)
				}
				check(t, ref, replayOf(t, n), id, basic("alice"))
			})
		}
	}
	t.Run("the console's form", func(t *testing.T) {
		id, ref := park(t, "/scripts?")
		approve(t, id)
		_, page := testkit.RawCall(t, gw, "GET /.approvals/requests/"+id+" HTTP/1.1\r\nHost: complete.example\r\nAuthorization: "+basic("alice")+"\r\nConnection: close\r\n\r\n")
		m := csrfField.FindSubmatch(page)
		if m == nil {
			t.Fatalf("no form on the console's page: %s", page)
		}
		n := rec.count()
		status, answer := testkit.RawCall(t, gw, trick("/.approvals/requests/"+id+"/complete?x=2&_method=DELETE", basic("alice"), "application/x-www-form-urlencoded",
			"csrf="+string(m[1])+"&_method=DELETE&notes=done", "Origin: http://complete.example\r\n"))
		if status != 303 {
			t.Fatalf("the console's complete: %d %s", status, answer)
		}
		check(t, ref, replayOf(t, n), id, basic("alice"))
	})
	t.Run("auto-complete by the approval", func(t *testing.T) {
		id, ref := park(t, "/autoscripts?")
		n := rec.count()
		status, answer := testkit.RawCall(t, gw, trick("/.approvals/api/v1/requests/"+id+"/approve?x=2", basic("bob"), "application/json", `{"notes":"ok"}`, groups))
		if status != 200 || !strings.Contains(string(answer), `"status":"completed"`) {
			t.Fatalf("approve: %d %s", status, answer)
		}
		check(t, ref, replayOf(t, n), id, "")
	})
}
