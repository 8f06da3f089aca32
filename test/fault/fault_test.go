// Package fault runs several gateways on a real three-member etcd cluster,
// as separate processes, and kills an etcd leader and a gateway while
// requests are parked, approved and completed: nothing may be lost, nothing
// replayed twice, and the history of request states must be linearizable.
package fault

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/approval-gateway/gateway/internal/testkit"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

const secret = "fault-test-secret-fault-test-secret"

func build(t *testing.T, pkg, out string) {
	t.Helper()
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("building %s: %v", pkg, err)
	}
}

// proc is a child process that can be killed and restarted.
type proc struct {
	args []string
	log  string
	cmd  *exec.Cmd
}

func (p *proc) start(t *testing.T, ready string) {
	t.Helper()
	cmd := exec.Command(p.args[0], p.args[1:]...)
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := cmd.StderrPipe()
	cmd.Stdout = f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.cmd = cmd
	seen := make(chan struct{})
	go func() {
		defer f.Close()
		once := sync.Once{}
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			fmt.Fprintln(f, sc.Text())
			if ready != "" && strings.Contains(sc.Text(), ready) {
				once.Do(func() { close(seen) })
			}
		}
	}()
	if ready == "" {
		return
	}
	select {
	case <-seen:
	case <-time.After(60 * time.Second):
		t.Fatalf("%s did not start; see %s", p.args[0], p.log)
	}
}

func (p *proc) kill() {
	if p.cmd != nil && p.cmd.Process != nil {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		_ = p.cmd.Wait()
	}
}

func token(t *testing.T, sub string, groups ...string) string {
	return testkit.Token(t, secret, "", sub, groups...)
}

// outcome of one client call.
const (
	okOut      = "ok"
	refusedOut = "refused"
	unknownOut = "unknown"
)

type opInput struct {
	ID     string
	Action string // approve, complete, read
}

type opOutput struct {
	Result string // ok, refused, unknown
	Status string // for reads: the status seen
}

// model is the request state machine as a client sees it.
var model = porcupine.Model{
	Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
		by := map[string][]porcupine.Operation{}
		for _, op := range h {
			id := op.Input.(opInput).ID
			by[id] = append(by[id], op)
		}
		var out [][]porcupine.Operation
		for _, ops := range by {
			out = append(out, ops)
		}
		return out
	},
	Init: func() any { return "needs_approval" },
	Step: func(state, input, output any) (bool, any) {
		st, in, out := state.(string), input.(opInput), output.(opOutput)
		switch in.Action {
		case "approve":
			switch out.Result {
			case okOut:
				return st == "needs_approval", "approved"
			case refusedOut:
				return st != "needs_approval", st
			}
			if st == "needs_approval" {
				return true, "approved"
			}
			return true, st
		case "complete":
			switch out.Result {
			case okOut:
				// The backend answered; the gateway records completed, unless
				// it died before writing it down (then failed after the claim
				// timeout).
				return st == "approved", "claimed"
			case refusedOut:
				return st != "approved", st
			}
			if st == "approved" {
				return true, "claimed" // completed or failed: the read says which
			}
			return true, st
		case "read":
			if st == "claimed" {
				return out.Status == "completed" || out.Status == "failed", out.Status
			}
			return out.Status == st, st
		}
		return false, st
	},
}

func TestClusterFaults(t *testing.T) {
	if os.Getenv("CI") != "true" && os.Getenv("APPROVAL_FAULT_TEST") == "" {
		t.Skip("the fault test runs in CI, or with APPROVAL_FAULT_TEST=1")
	}
	n := 1000
	if v, err := strconv.Atoi(os.Getenv("APPROVAL_FAULT_REQUESTS")); err == nil && v > 0 {
		n = v
	}
	bin, logs := t.TempDir(), t.TempDir()
	if d := os.Getenv("APPROVAL_FAULT_LOGS"); d != "" {
		logs = d
	}
	build(t, "github.com/approval-gateway/gateway/test/fault/etcdmember", filepath.Join(bin, "etcdmember"))
	build(t, "github.com/approval-gateway/gateway/gateway", filepath.Join(bin, "gateway"))

	// Three etcd members.
	var members []*proc
	var clientURLs, peers []string
	for i := range 3 {
		clientURLs = append(clientURLs, fmt.Sprintf("http://127.0.0.1:%d", testkit.Port(t)))
		peers = append(peers, fmt.Sprintf("m%d=http://127.0.0.1:%d", i, testkit.Port(t)))
	}
	for i := range 3 {
		peer := strings.SplitN(peers[i], "=", 2)[1]
		p := &proc{args: []string{filepath.Join(bin, "etcdmember"), "-name", fmt.Sprintf("m%d", i), "-dir", filepath.Join(t.TempDir(), "data"),
			"-client", clientURLs[i], "-peer", peer, "-cluster", strings.Join(peers, ",")}, log: filepath.Join(logs, fmt.Sprintf("etcd-%d.log", i))}
		members = append(members, p)
		t.Cleanup(p.kill)
	}
	var wg sync.WaitGroup
	for _, m := range members {
		wg.Add(1)
		go func() { defer wg.Done(); m.start(t, "ready") }()
	}
	wg.Wait()
	cli, err := clientv3.New(clientv3.Config{Endpoints: clientURLs, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()

	// A backend that counts calls by Idempotency-Key.
	var bmu sync.Mutex
	keys := map[string]int{}
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if k := r.Header.Get("Idempotency-Key"); k != "" {
			bmu.Lock()
			keys[k]++
			bmu.Unlock()
		}
		time.Sleep(5 * time.Millisecond) // replays are in flight when a gateway dies
		w.WriteHeader(http.StatusOK)
	}))
	defer backend.Close()

	// Three gateways.
	policies, _ := filepath.Abs("../../module/approvals/testdata/policies")
	var gateways []*proc
	var bases []string
	for i := range 3 {
		port := testkit.Port(t)
		bases = append(bases, fmt.Sprintf("http://127.0.0.1:%d", port))
		cfg := fmt.Sprintf(`{
	admin off
	persist_config off
	auto_https off
	storage file_system %s
}

http://127.0.0.1:%d {
	approval_gateway {
		store etcd {
			endpoints %s
			timeout 3s
		}
		identity jwt {
			secret %s
		}
		policies %s
		admin_groups auditors
		claim_timeout 5s
		sweep_interval 1s
		max_pending_per_identity -1
	}
	reverse_proxy %s
}
`, t.TempDir(), port, strings.Join(clientURLs, " "), secret, policies, strings.TrimPrefix(backend.URL, "http://"))
		file := filepath.Join(t.TempDir(), "Caddyfile")
		if err := os.WriteFile(file, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		p := &proc{args: []string{filepath.Join(bin, "gateway"), "run", "--config", file, "--adapter", "caddyfile"},
			log: filepath.Join(logs, fmt.Sprintf("gateway-%d.log", i))}
		p.start(t, "serving initial configuration")
		gateways = append(gateways, p)
		t.Cleanup(p.kill)
		testkit.WaitHealthy(t, bases[i]+"/.approvals/healthz")
	}
	client := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	var dead atomic.Int32
	dead.Store(-1)
	pick := func(i int) string {
		for {
			if int32(i%3) != dead.Load() {
				return bases[i%3]
			}
			i++
		}
	}
	alice, bob, admin := token(t, "alice"), token(t, "bob", "approvers"), token(t, "audrey", "auditors")
	start := time.Now()
	now := func() int64 { return int64(time.Since(start)) }

	type call struct {
		status  int
		code    string
		status2 string
		id      string
		err     error
	}
	do := func(method, url, tok string, headers ...string) call {
		req, _ := http.NewRequest(method, url, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		resp, err := client.Do(req)
		if err != nil {
			return call{err: err}
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var body struct {
			ID     string `json:"id"`
			Status string `json:"status"`
			Error  struct {
				Code      string `json:"code"`
				Status    string `json:"status"`
				RequestID string `json:"request_id"`
			} `json:"error"`
		}
		_ = json.Unmarshal(raw, &body)
		c := call{status: resp.StatusCode, code: body.Error.Code, status2: body.Error.Status, id: body.ID}
		if body.Error.RequestID != "" {
			c.id = body.Error.RequestID
		}
		if resp.Header.Get("Approval-Request-Id") != "" {
			c.id = resp.Header.Get("Approval-Request-Id")
		}
		return c
	}

	var hmu sync.Mutex
	var history []porcupine.Operation
	record := func(client int, id, action string, callAt int64, out opOutput) {
		ret := now()
		if out.Result == unknownOut {
			ret = math.MaxInt64
		}
		hmu.Lock()
		history = append(history, porcupine.Operation{ClientId: client, Input: opInput{ID: id, Action: action}, Call: callAt, Output: out, Return: ret})
		hmu.Unlock()
	}

	var parked sync.Map // id -> request number
	var cutCompletes sync.Map
	var answeredBy sync.Map // id -> the gateway that answered its complete
	var answeredAt sync.Map // id -> when that complete was sent
	var outageFrom, outageTo atomic.Int64
	var progress atomic.Int32
	retry := func(f func() (bool, error)) {
		for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline); time.Sleep(150 * time.Millisecond) {
			if done, _ := f(); done {
				return
			}
		}
		t.Errorf("an operation did not finish in 90s")
	}

	work := make(chan int)
	for w := range 24 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				path := fmt.Sprintf("/items/%d", i)
				var id string
				retry(func() (bool, error) {
					c := do("DELETE", pick(i)+path, alice, "Approval-Justification", "fault test")
					if c.err == nil && (c.status == http.StatusAccepted || c.code == "pending_exists") {
						id = c.id
						return true, nil
					}
					return false, c.err
				})
				if id == "" {
					continue
				}
				parked.Store(id, i)
				retry(func() (bool, error) {
					at := now()
					c := do("POST", pick(i+1)+"/.approvals/api/v1/requests/"+id+"/approve", bob)
					switch {
					case c.err == nil && c.status == http.StatusOK:
						record(w, id, "approve", at, opOutput{Result: okOut})
						return true, nil
					case c.err == nil && c.status == http.StatusConflict:
						record(w, id, "approve", at, opOutput{Result: refusedOut})
						return true, nil
					}
					record(w, id, "approve", at, opOutput{Result: unknownOut})
					return false, c.err
				})
				retry(func() (bool, error) {
					at := now()
					base := pick(i + 2)
					c := do("POST", base+"/.approvals/api/v1/requests/"+id+"/complete", alice)
					switch {
					case c.err == nil && c.status == http.StatusOK && c.id == id:
						answeredBy.Store(id, base)
						answeredAt.Store(id, at)
						record(w, id, "complete", at, opOutput{Result: okOut})
						return true, nil
					case c.err == nil && c.status == http.StatusConflict:
						record(w, id, "complete", at, opOutput{Result: refusedOut})
						return c.status2 != "completing", nil // wait for a claim cut by a kill to time out
					}
					// Broken or unavailable: the claim may have been made and cut.
					cutCompletes.Store(id, true)
					record(w, id, "complete", at, opOutput{Result: unknownOut})
					return false, c.err
				})
				progress.Add(1)
			}
		}()
	}

	// Chaos: kill the etcd leader at a third, restart it; kill a gateway
	// at two thirds, while replays are in flight.
	chaos := make(chan struct{})
	go func() {
		defer close(chaos)
		for progress.Load() < int32(n/3) {
			time.Sleep(20 * time.Millisecond)
		}
		leader := -1
		for i, u := range clientURLs {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			st, err := cli.Status(ctx, u)
			cancel()
			if err == nil && st.Leader == st.Header.MemberId {
				leader = i
			}
		}
		if leader < 0 {
			t.Error("no etcd leader found")
			return
		}
		t.Logf("killing etcd leader m%d at %d/%d", leader, progress.Load(), n)
		outageFrom.Store(now())
		members[leader].kill()
		time.Sleep(2 * time.Second)
		members[leader].start(t, "ready")
		outageTo.Store(now() + int64(5*time.Second)) // the store's timeouts outlast the restart
		t.Logf("etcd m%d restarted at %d/%d", leader, progress.Load(), n)
		for progress.Load() < int32(2*n/3) {
			time.Sleep(20 * time.Millisecond)
		}
		t.Logf("killing gateway 2 at %d/%d", progress.Load(), n)
		dead.Store(2)
		gateways[2].kill()
	}()

	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	<-chaos
	elapsed := time.Since(start)

	// Claims cut by the gateway kill time out (claim_timeout 5s): wait
	// until no request is completing.
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		c := do("GET", pick(0)+"/.approvals/api/v1/requests?view=all&status=completing&limit=1", admin)
		if c.err == nil && c.status == http.StatusOK && c.id == "" {
			var page struct{ Requests []any }
			req, _ := http.NewRequest("GET", pick(0)+"/.approvals/api/v1/requests?view=all&status=completing&limit=1", nil)
			req.Header.Set("Authorization", "Bearer "+admin)
			if resp, err := client.Do(req); err == nil {
				_ = json.NewDecoder(resp.Body).Decode(&page)
				resp.Body.Close()
				if len(page.Requests) == 0 {
					break
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("requests stay completing")
		}
	}

	// Every parked request has its record, in a terminal state.
	counts := map[string]int{}
	statusOf := map[string]string{}
	var ids []string
	parked.Range(func(k, _ any) bool { ids = append(ids, k.(string)); return true })
	for _, id := range ids {
		var st string
		retry(func() (bool, error) {
			at := now()
			req, _ := http.NewRequest("GET", pick(0)+"/.approvals/api/v1/requests/"+id, nil)
			req.Header.Set("Authorization", "Bearer "+admin)
			resp, err := client.Do(req)
			if err != nil {
				return false, err
			}
			defer resp.Body.Close()
			var rec struct{ Status string }
			_ = json.NewDecoder(resp.Body).Decode(&rec)
			if resp.StatusCode != http.StatusOK {
				return false, fmt.Errorf("%d", resp.StatusCode)
			}
			st = rec.Status
			record(99, id, "read", at, opOutput{Result: okOut, Status: st})
			return true, nil
		})
		counts[st]++
		statusOf[id] = st
		if st == "failed" {
			// A claim is cut by a kill: the complete call broke, or the
			// gateway that answered it died before recording completed, or
			// the etcd leader died while the outcome was being written.
			_, cut := cutCompletes.Load(id)
			by, _ := answeredBy.Load(id)
			at, _ := answeredAt.Load(id)
			inOutage := at != nil && at.(int64) >= outageFrom.Load()-int64(5*time.Second) && at.(int64) <= outageTo.Load()
			if !cut && by != bases[2] && !inOutage {
				t.Errorf("request %s failed though no kill cut its claim", id)
			}
		} else if st != "completed" {
			t.Errorf("request %s ended %s", id, st)
		}
	}
	bmu.Lock()
	twice := 0
	for _, c := range keys {
		if c > 1 {
			twice++
		}
	}
	bmu.Unlock()
	if len(ids) != n {
		t.Errorf("%d of %d requests were parked", len(ids), n)
	}
	if twice > 0 {
		t.Errorf("%d Idempotency-Keys reached the backend twice", twice)
	}
	// Every completed record matches exactly one backend call.
	completedCalls := 0
	bmu.Lock()
	for _, id := range ids {
		if statusOf[id] == "completed" {
			if keys[id] != 1 {
				t.Errorf("completed request %s reached the backend %d times", id, keys[id])
			}
			completedCalls++
		}
	}
	bmu.Unlock()
	res := porcupine.CheckOperationsTimeout(model, history, 60*time.Second)
	t.Logf("fault test: %d requests in %s over 3 gateways on 3 etcd members; completed %d, failed %d (claims cut by a kill), backend calls for completed %d, keys seen twice %d, history of %d operations: %s",
		n, elapsed.Round(time.Second), counts["completed"], counts["failed"], completedCalls, twice, len(history), res)
	if res != porcupine.Ok {
		t.Errorf("the history of request states is not linearizable: %s", res)
	}
}
