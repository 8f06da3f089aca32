package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
)

// Exit codes of `gateway approvals`, for scripts.
const (
	exitOK          = 0
	exitRefused     = 1 // the gateway refused the call (a 4xx answer)
	exitUsage       = 2 // bad flags or arguments
	exitUnavailable = 3 // the gateway or its store could not be reached (5xx, network)
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "approvals",
		Usage: "<list|show|approve|reject|cancel|complete|watch> [flags]",
		Short: "Lists, decides and completes approval requests on a gateway",
		Long: `
Talks to a gateway's approval API. The server comes from --server (or
APPROVAL_SERVER), the token from --token, APPROVAL_TOKEN or --token-file.
Output is a table, or one JSON document with -o json. Exit codes: 0 done,
1 refused by the gateway, 2 usage error, 3 gateway or store unavailable.`,
		CobraFunc: func(cmd *cobra.Command) {
			addApprovalsCommands(cmd, caddyExit)
		},
	})
}

// cliFunc runs one verb and returns its exit code.
type cliFunc func(c *cli, args []string) (int, error)

// caddyExit runs a verb under Caddy's command runner, which turns the code
// into the process's exit status.
func caddyExit(f cliFunc, c *cli) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		c.out = cmd.OutOrStdout()
		return caddycmd.WrapCommandFuncForCobra(func(caddycmd.Flags) (int, error) { return f(c, args) })(cmd, args)
	}
}

// cli holds the common flags.
type cli struct {
	server, prefix, token, tokenFile, output string
	out                                      io.Writer
	client                                   *http.Client
}

func addApprovalsCommands(root *cobra.Command, wrap func(cliFunc, *cli) func(*cobra.Command, []string) error) {
	c := &cli{client: &http.Client{Timeout: 60 * time.Second}}
	pf := root.PersistentFlags()
	pf.StringVar(&c.server, "server", os.Getenv("APPROVAL_SERVER"), "the gateway's site base URL (or $APPROVAL_SERVER)")
	pf.StringVar(&c.prefix, "prefix", "/.approvals", "the gateway's api_prefix")
	pf.StringVar(&c.token, "token", "", "bearer token (default $APPROVAL_TOKEN)")
	pf.StringVar(&c.tokenFile, "token-file", "", "file holding the bearer token")
	pf.StringVarP(&c.output, "output", "o", "table", "table or json")

	var view, status string
	var limit int
	list := &cobra.Command{Use: "list", Short: "Lists requests (default: mine, all statuses)", Args: cobra.NoArgs,
		RunE: wrap(func(c *cli, _ []string) (int, error) {
			q := url.Values{"view": {view}}
			if status != "" {
				q.Set("status", status)
			}
			if limit > 0 {
				q.Set("limit", fmt.Sprint(limit))
			}
			var page struct {
				Requests []map[string]any `json:"requests"`
				Next     string           `json:"next_cursor"`
			}
			code, err := c.call(http.MethodGet, "/requests?"+q.Encode(), nil, &page)
			if err != nil {
				return code, err
			}
			if c.output == "json" {
				return c.json(page)
			}
			tw := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSTATUS\tREQUESTER\tOPERATION\tPOLICY\tCREATED")
			for _, r := range page.Requests {
				op, _ := r["operation"].(map[string]any)
				req, _ := r["requester"].(map[string]any)
				fmt.Fprintf(tw, "%v\t%v\t%v\t%v %v\t%v\t%v\n", r["id"], r["status"], req["subject"], op["method"], op["path"], r["policy"], r["created_at"])
			}
			return exitOK, tw.Flush()
		}, c)}
	list.Flags().StringVar(&view, "view", "mine", "mine, received or all")
	list.Flags().StringVar(&status, "status", "", "only these statuses (comma-separated)")
	list.Flags().IntVar(&limit, "limit", 0, "page size")

	show := &cobra.Command{Use: "show <id>", Short: "Shows a request with its body and history", Args: cobra.ExactArgs(1),
		RunE: wrap(func(c *cli, args []string) (int, error) {
			var r map[string]any
			code, err := c.call(http.MethodGet, "/requests/"+url.PathEscape(args[0]), nil, &r)
			if err != nil {
				return code, err
			}
			if c.output == "json" {
				return c.json(r)
			}
			return exitOK, printRequest(c.out, r)
		}, c)}

	var notes, hash string
	action := func(verb string) *cobra.Command {
		cmd := &cobra.Command{Use: verb + " <id>", Short: strings.ToUpper(verb[:1]) + verb[1:] + "s a request", Args: cobra.ExactArgs(1),
			RunE: wrap(func(c *cli, args []string) (int, error) {
				body := map[string]string{}
				if notes != "" {
					body["notes"] = notes
				}
				if hash != "" {
					body["payload_sha256"] = hash
				}
				var r map[string]any
				code, err := c.call(http.MethodPost, "/requests/"+url.PathEscape(args[0])+"/"+verb, body, &r)
				if err != nil {
					return code, err
				}
				if c.output == "json" {
					return c.json(r)
				}
				fmt.Fprintf(c.out, "%v is %v\n", r["id"], r["status"])
				return exitOK, nil
			}, c)}
		cmd.Flags().StringVar(&notes, "notes", "", "approver or requester notes (required to reject)")
		if verb == "approve" {
			cmd.Flags().StringVar(&hash, "payload-sha256", "", "approve only if the payload still has this hash")
		}
		return cmd
	}

	complete := &cobra.Command{Use: "complete <id>", Short: "Completes an approved request and prints the backend's answer", Args: cobra.ExactArgs(1),
		RunE: wrap(func(c *cli, args []string) (int, error) {
			resp, err := c.do(http.MethodPost, "/requests/"+url.PathEscape(args[0])+"/complete", nil, "")
			if err != nil {
				return exitUnavailable, err
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.Header.Get("Approval-Request-Id") == "" {
				return refusal(resp.StatusCode, body)
			}
			if c.output == "json" {
				return c.json(map[string]any{"status": resp.StatusCode, "headers": resp.Header, "body": string(body)})
			}
			fmt.Fprintf(c.out, "%s %s\n", resp.Proto, resp.Status)
			_, err = c.out.Write(append(bytes.TrimRight(body, "\n"), '\n'))
			return exitOK, err
		}, c)}

	var last string
	var count int
	watch := &cobra.Command{Use: "watch", Short: "Follows the event stream (what you may see)", Args: cobra.NoArgs,
		RunE: wrap(func(c *cli, _ []string) (int, error) { return c.watch(last, count) }, c)}
	watch.Flags().StringVar(&last, "last-event-id", "", "resume after this event id")
	watch.Flags().IntVar(&count, "count", 0, "exit after this many events (0: follow forever)")

	root.AddCommand(list, show, action("approve"), action("reject"), action("cancel"), complete, watch)
}

func (c *cli) tokenValue() (string, error) {
	switch {
	case c.token != "":
		return c.token, nil
	case c.tokenFile != "":
		b, err := os.ReadFile(c.tokenFile)
		return strings.TrimSpace(string(b)), err
	case os.Getenv("APPROVAL_TOKEN") != "":
		return os.Getenv("APPROVAL_TOKEN"), nil
	}
	return "", errors.New("no token: pass --token, --token-file or set APPROVAL_TOKEN")
}

func (c *cli) do(method, path string, body any, lastEventID string) (*http.Response, error) {
	if c.server == "" {
		return nil, errors.New("no server: pass --server or set APPROVAL_SERVER")
	}
	tok, err := c.tokenValue()
	if err != nil {
		return nil, err
	}
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, strings.TrimRight(c.server, "/")+c.prefix+"/api/v1"+path, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	return c.client.Do(req)
}

// call sends a request and decodes a 2xx JSON answer into out; otherwise it
// returns the exit code and the gateway's error.
func (c *cli) call(method, path string, body, out any) (int, error) {
	if c.output != "table" && c.output != "json" {
		return exitUsage, fmt.Errorf("--output %q: want table or json", c.output)
	}
	resp, err := c.do(method, path, body, "")
	if err != nil {
		if strings.HasPrefix(err.Error(), "no ") {
			return exitUsage, err
		}
		return exitUnavailable, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return refusal(resp.StatusCode, raw)
	}
	return exitOK, json.Unmarshal(raw, out)
}

// refusal turns an error answer into an exit code and message.
func refusal(status int, raw []byte) (int, error) {
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	_ = json.Unmarshal(raw, &e)
	msg := fmt.Sprintf("%d %s: %s", status, e.Error.Code, e.Error.Message)
	if e.Error.Code == "" {
		msg = fmt.Sprintf("%d %s", status, http.StatusText(status))
	}
	if status >= 500 {
		return exitUnavailable, errors.New(msg)
	}
	return exitRefused, errors.New(msg)
}

func (c *cli) json(v any) (int, error) {
	enc := json.NewEncoder(c.out)
	enc.SetIndent("", "  ")
	return exitOK, enc.Encode(v)
}

func printRequest(w io.Writer, r map[string]any) error {
	op, _ := r["operation"].(map[string]any)
	req, _ := r["requester"].(map[string]any)
	fmt.Fprintf(w, "ID:            %v\nStatus:        %v\nRequester:     %v\nOperation:     %v %v\nResource:      %v\nPolicy:        %v (%v)\nJustification: %v\nExpires:       %v\nPayload:       %v\n",
		r["id"], r["status"], req["subject"], op["method"], op["path"], r["resource"], r["policy"], r["reason"], r["justification"], r["expires_at"], r["payload_sha256"])
	if b, ok := r["body"].(string); ok && b != "" {
		fmt.Fprintf(w, "Body:\n  %s\n", strings.ReplaceAll(b, "\n", "\n  "))
	}
	fmt.Fprintln(w, "Approvers:")
	apps, _ := r["approvers"].([]any)
	for _, a := range apps {
		m, _ := a.(map[string]any)
		var who []string
		list, _ := m["approvals"].([]any)
		for _, x := range list {
			xm, _ := x.(map[string]any)
			who = append(who, fmt.Sprint(xm["subject"]))
		}
		fmt.Fprintf(w, "  %v: %v required, approved by [%s], %v still needed\n", m["group"], m["required"], strings.Join(who, ", "), m["remaining"])
	}
	fmt.Fprintln(w, "History:")
	hist, _ := r["history"].([]any)
	for _, h := range hist {
		m, _ := h.(map[string]any)
		fmt.Fprintf(w, "  %v  %v %v", m["at"], m["actor"], m["action"])
		if n, _ := m["notes"].(string); n != "" {
			fmt.Fprintf(w, ": %q", n)
		}
		fmt.Fprintln(w)
	}
	if res, ok := r["result"].(map[string]any); ok {
		fmt.Fprintf(w, "Result:        %v %v\n", res["status"], res["body_excerpt"])
	}
	return nil
}

// watch follows the event stream, reconnecting after the last event seen.
func (c *cli) watch(last string, count int) (int, error) {
	ctx := context.Background()
	seen := 0
	for {
		resp, err := c.do(http.MethodGet, "/events", nil, last)
		if err != nil {
			if strings.HasPrefix(err.Error(), "no ") {
				return exitUsage, err
			}
			return exitUnavailable, err
		}
		if resp.StatusCode != http.StatusOK {
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			return refusal(resp.StatusCode, raw)
		}
		sc := bufio.NewScanner(resp.Body)
		var id, typ, data string
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "id: "):
				id = strings.TrimPrefix(line, "id: ")
			case strings.HasPrefix(line, "event: "):
				typ = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				data = strings.TrimPrefix(line, "data: ")
			case line == "" && typ != "":
				if typ == "reset" {
					resp.Body.Close()
					return exitRefused, errors.New("the events after --last-event-id are no longer kept: list the requests again")
				}
				if c.output == "json" {
					fmt.Fprintln(c.out, data)
				} else {
					var ev map[string]any
					_ = json.Unmarshal([]byte(data), &ev)
					fmt.Fprintf(c.out, "%s  %-28s %v  by %v  %v\n", id, typ, ev["request_id"], ev["actor"], ev["link"])
				}
				last, typ, data = id, "", ""
				if seen++; count > 0 && seen >= count {
					resp.Body.Close()
					return exitOK, nil
				}
			}
		}
		resp.Body.Close()
		select {
		case <-ctx.Done():
			return exitOK, nil
		case <-time.After(2 * time.Second): // the stream broke: resume
		}
	}
}
