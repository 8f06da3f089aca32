package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/approval-gateway/gateway/module/attest"
	"github.com/approval-gateway/gateway/module/auditchain"
	"github.com/spf13/cobra"
)

// exitTampered is audit verify's exit code for a log that was tampered
// with.
const exitTampered = 9

// auditCommand is `approvals audit export|verify`.
func auditCommand(c *cli, wrap func(cliFunc, *cli) func(*cobra.Command, []string) error) *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "Exports and verifies the tamper-evident audit log"}
	var jwks string
	export := &cobra.Command{Use: "export", Short: "Writes the audit log as JSON lines (signed checkpoints, then events in seq order)", Args: cobra.NoArgs,
		RunE: wrap(func(c *cli, _ []string) (int, error) { return c.exportAudit(context.Background()) }, c)}
	verify := &cobra.Command{Use: "verify [FILE|-]", Short: "Checks an exported log offline (exit 9 when tampered with); without FILE, asks the gateway to check its store",
		Args: cobra.MaximumNArgs(1),
		RunE: wrap(func(c *cli, args []string) (int, error) { return c.verifyAudit(context.Background(), args, jwks) }, c)}
	verify.Flags().StringVar(&jwks, "jwks", "", "the gateway's keys: a JWKS file or URL (default: {server}{prefix}/.well-known/jwks.json?all=true)")
	cmd.AddCommand(export, verify)
	return cmd
}

// exportAudit copies the gateway's export to the output.
func (c *cli) exportAudit(ctx context.Context) (int, error) {
	resp, err := c.do(ctx, http.MethodGet, "/audit/export", nil, "")
	if err != nil {
		return failure(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		raw, _ := io.ReadAll(resp.Body)
		return refusal(resp.StatusCode, raw)
	}
	if _, err := io.Copy(c.out, resp.Body); err != nil {
		return exitUnavailable, fmt.Errorf("the export was cut: %w", err)
	}
	return exitOK, nil
}

// verifyAudit verifies an exported log against the gateway's keys, or,
// without a file, has the gateway verify its store.
func (c *cli) verifyAudit(ctx context.Context, args []string, jwksFrom string) (int, error) {
	var res auditchain.Result
	if len(args) == 0 {
		if code, err := c.call(ctx, http.MethodGet, "/audit/verify", nil, &res); err != nil {
			return code, err
		}
	} else {
		keys, err := c.jwks(ctx, jwksFrom)
		if err != nil {
			return exitUsage, err
		}
		in := io.Reader(os.Stdin)
		if args[0] != "-" {
			f, err := os.Open(args[0])
			if err != nil {
				return exitUsage, err
			}
			defer f.Close()
			in = f
		}
		if res, err = auditchain.VerifyExport(in, keys.Public()); err != nil {
			return exitUsage, err
		}
	}
	if c.output == "json" {
		if _, err := c.json(res); err != nil {
			return exitUnavailable, err
		}
	} else if res.OK {
		fmt.Fprintf(c.out, "ok: %d events in one chain, %d signed checkpoints verified\n", res.Checked, res.Checkpoints)
	} else {
		fmt.Fprintf(c.out, "TAMPERED at seq %d: %s (%d events checked before it)\n", res.FirstBad.Seq, res.FirstBad.Reason, res.Checked)
	}
	if !res.OK {
		return exitTampered, errors.New("the audit log does not verify")
	}
	return exitOK, nil
}

// jwks reads the gateway's full key set from a file, a URL, or the
// gateway itself.
func (c *cli) jwks(ctx context.Context, from string) (attest.JWKS, error) {
	var set attest.JWKS
	if from == "" {
		if c.server == "" {
			return set, errors.New("no keys: pass --jwks FILE|URL, or --server to read the gateway's")
		}
		from = strings.TrimRight(c.server, "/") + c.prefix + "/.well-known/jwks.json?all=true"
	}
	var raw []byte
	if strings.HasPrefix(from, "http://") || strings.HasPrefix(from, "https://") {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, from, nil)
		if err != nil {
			return set, err
		}
		resp, err := c.client.Do(req)
		if err != nil {
			return set, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return set, fmt.Errorf("%s answered %d", from, resp.StatusCode)
		}
		if raw, err = io.ReadAll(io.LimitReader(resp.Body, 1<<20)); err != nil {
			return set, err
		}
	} else {
		var err error
		if raw, err = os.ReadFile(from); err != nil {
			return set, err
		}
	}
	if err := json.Unmarshal(raw, &set); err != nil || len(set.Keys) == 0 {
		return set, fmt.Errorf("%s is not a JWKS with keys", from)
	}
	return set, nil
}
