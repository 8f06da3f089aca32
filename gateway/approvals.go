package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "approvals",
		Usage: "<list|show|approve|reject|cancel|complete|wait|watch|audit> [flags]",
		Short: "Lists, decides, awaits and completes approval requests on a gateway",
		Long: `
Talks to a gateway's approval API. The server comes from --server (or
APPROVAL_SERVER), the token from --token, APPROVAL_TOKEN or --token-file.
Output is a table, or one JSON document with -o json. Exit codes: 0 done,
1 refused by the gateway, 2 usage error, 3 gateway or store unavailable;
wait exits 0 when the request is approved (or completed), 4 rejected,
5 canceled, 6 expired, 7 failed, 8 still undecided at --timeout;
audit verify exits 9 when the audit log was tampered with.
The root command's "completion" prints shell completion, which completes
verbs, flags and the ids of requests you can act on.`,
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

// statuses are the request statuses, for --status and its completion.
var statuses = []string{"needs_approval", "approved", "completing", "completed", "rejected", "canceled", "expired", "failed", "bypassed"}

func addApprovalsCommands(root *cobra.Command, wrap func(cliFunc, *cli) func(*cobra.Command, []string) error) {
	c := &cli{client: &http.Client{Timeout: 60 * time.Second}}
	pf := root.PersistentFlags()
	pf.StringVar(&c.server, "server", os.Getenv("APPROVAL_SERVER"), "the gateway's site base URL (or $APPROVAL_SERVER)")
	pf.StringVar(&c.prefix, "prefix", "/.approvals", "the gateway's api_prefix")
	pf.StringVar(&c.token, "token", "", "bearer token (default $APPROVAL_TOKEN)")
	pf.StringVar(&c.tokenFile, "token-file", "", "file holding the bearer token")
	pf.StringVarP(&c.output, "output", "o", "table", "table or json")
	_ = root.RegisterFlagCompletionFunc("output", fixed("table", "json"))

	root.AddCommand(listCommand(c, wrap), showCommand(c, wrap),
		actionCommand(c, wrap, "approve"), actionCommand(c, wrap, "reject"), actionCommand(c, wrap, "cancel"),
		completeCommand(c, wrap), waitCommand(c, wrap), watchCommand(c, wrap), auditCommand(c, wrap))
}

func listCommand(c *cli, wrap func(cliFunc, *cli) func(*cobra.Command, []string) error) *cobra.Command {
	var view, status, policy, requester, resource, cursor string
	var limit int
	cmd := &cobra.Command{Use: "list", Short: "Lists requests (default: mine, all statuses)", Args: cobra.NoArgs,
		RunE: wrap(func(c *cli, _ []string) (int, error) {
			q := url.Values{"view": {view}}
			for k, v := range map[string]string{"status": status, "policy": policy, "requester": requester, "resource": resource, "cursor": cursor} {
				if v != "" {
					q.Set(k, v)
				}
			}
			if limit > 0 {
				q.Set("limit", fmt.Sprint(limit))
			}
			var page struct {
				Requests []map[string]any `json:"requests"`
				Next     string           `json:"next_cursor,omitempty"`
			}
			code, err := c.call(context.Background(), http.MethodGet, "/requests?"+q.Encode(), nil, &page)
			if err != nil {
				return code, err
			}
			if c.output == "json" {
				return c.json(page)
			}
			return exitOK, printList(c.out, page.Requests, page.Next)
		}, c)}
	f := cmd.Flags()
	f.StringVar(&view, "view", "mine", "mine (what you asked), received (what waits for your groups) or all (admins)")
	f.StringVar(&status, "status", "", "only these statuses (comma-separated)")
	f.StringVar(&policy, "policy", "", "only requests parked by this policy")
	f.StringVar(&requester, "requester", "", "only requests of this subject")
	f.StringVar(&resource, "resource", "", "only requests for this resource")
	f.StringVar(&cursor, "cursor", "", "the next page after this cursor")
	f.IntVar(&limit, "limit", 0, "page size")
	_ = cmd.RegisterFlagCompletionFunc("view", fixed("mine", "received", "all"))
	_ = cmd.RegisterFlagCompletionFunc("status", fixed(statuses...))
	return cmd
}

func showCommand(c *cli, wrap func(cliFunc, *cli) func(*cobra.Command, []string) error) *cobra.Command {
	return &cobra.Command{Use: "show <id>", Short: "Shows a request with its body and history", Args: cobra.ExactArgs(1),
		ValidArgsFunction: c.completeIDs(url.Values{"view": {"mine"}}, url.Values{"view": {"received"}}),
		RunE: wrap(func(c *cli, args []string) (int, error) {
			var r map[string]any
			code, err := c.call(context.Background(), http.MethodGet, "/requests/"+url.PathEscape(args[0]), nil, &r)
			if err != nil {
				return code, err
			}
			if c.output == "json" {
				return c.json(r)
			}
			return exitOK, printRequest(c.out, r)
		}, c)}
}

// actionTargets are the requests each action may apply to, for completion.
var actionTargets = map[string][]url.Values{
	"approve": {{"view": {"received"}, "status": {"needs_approval"}}},
	"reject":  {{"view": {"received"}, "status": {"needs_approval"}}},
	"cancel":  {{"view": {"mine"}, "status": {"needs_approval,approved"}}},
}

func actionCommand(c *cli, wrap func(cliFunc, *cli) func(*cobra.Command, []string) error, verb string) *cobra.Command {
	var notes, hash string
	cmd := &cobra.Command{Use: verb + " <id>", Short: strings.ToUpper(verb[:1]) + verb[1:] + "s a request", Args: cobra.ExactArgs(1),
		ValidArgsFunction: c.completeIDs(actionTargets[verb]...),
		RunE: wrap(func(c *cli, args []string) (int, error) {
			body := map[string]string{}
			if notes != "" {
				body["notes"] = notes
			}
			if hash != "" {
				body["payload_sha256"] = hash
			}
			var r map[string]any
			code, err := c.call(context.Background(), http.MethodPost, "/requests/"+url.PathEscape(args[0])+"/"+verb, body, &r)
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

func completeCommand(c *cli, wrap func(cliFunc, *cli) func(*cobra.Command, []string) error) *cobra.Command {
	return &cobra.Command{Use: "complete <id>", Short: "Completes an approved request and prints the backend's answer", Args: cobra.ExactArgs(1),
		ValidArgsFunction: c.completeIDs(url.Values{"view": {"mine"}, "status": {"approved"}}),
		RunE: wrap(func(c *cli, args []string) (int, error) {
			resp, err := c.do(context.Background(), http.MethodPost, "/requests/"+url.PathEscape(args[0])+"/complete", nil, "")
			if err != nil {
				return failure(err)
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
}

func waitCommand(c *cli, wrap func(cliFunc, *cli) func(*cobra.Command, []string) error) *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{Use: "wait <id>", Short: "Waits until a request is approved or ends; the exit code says how", Args: cobra.ExactArgs(1),
		ValidArgsFunction: c.completeIDs(url.Values{"view": {"mine"}, "status": {"needs_approval"}}, url.Values{"view": {"received"}, "status": {"needs_approval"}}),
		RunE: wrap(func(c *cli, args []string) (int, error) {
			return c.wait(context.Background(), args[0], timeout)
		}, c)}
	cmd.Flags().DurationVar(&timeout, "timeout", 0, "give up after this long (exit 8); 0 waits as long as it takes")
	return cmd
}

func watchCommand(c *cli, wrap func(cliFunc, *cli) func(*cobra.Command, []string) error) *cobra.Command {
	var last string
	var count int
	cmd := &cobra.Command{Use: "watch", Short: "Follows the event stream (what you may see)", Args: cobra.NoArgs,
		RunE: wrap(func(c *cli, _ []string) (int, error) { return c.watch(context.Background(), last, count) }, c)}
	cmd.Flags().StringVar(&last, "last-event-id", "", "resume after this event id")
	cmd.Flags().IntVar(&count, "count", 0, "exit after this many events (0: follow forever)")
	return cmd
}

// fixed completes a flag from a fixed list.
func fixed(values ...string) func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return values, cobra.ShellCompDirectiveNoFileComp
	}
}

// completeIDs completes a request id from the lists that queries name,
// each id with its operation and status; it offers nothing when the
// gateway cannot be asked (no server or token, or no answer in 3 s).
func (c *cli) completeIDs(queries ...url.Values) func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return func(_ *cobra.Command, args []string, prefix string) ([]string, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		var out []string
		seen := map[string]bool{}
		for _, q := range queries {
			var page struct {
				Requests []map[string]any `json:"requests"`
			}
			saved := c.output
			c.output = "json"
			_, err := c.call(ctx, http.MethodGet, "/requests?"+q.Encode(), nil, &page)
			c.output = saved
			if err != nil {
				break
			}
			for _, r := range page.Requests {
				id, _ := r["id"].(string)
				op, _ := r["operation"].(map[string]any)
				if id == "" || seen[id] || !strings.HasPrefix(id, prefix) {
					continue
				}
				seen[id] = true
				out = append(out, fmt.Sprintf("%s\t%v %v (%v)", id, op["method"], op["path"], r["status"]))
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}
