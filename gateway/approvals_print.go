package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// printList prints a page of requests as a table.
func printList(w io.Writer, requests []map[string]any, next string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATUS\tREQUESTER\tOPERATION\tPOLICY\tCREATED")
	for _, r := range requests {
		op, _ := r["operation"].(map[string]any)
		req, _ := r["requester"].(map[string]any)
		fmt.Fprintf(tw, "%v\t%v\t%v\t%v %v\t%v\t%v\n", r["id"], r["status"], req["subject"], op["method"], op["path"], r["policy"], r["created_at"])
	}
	if next != "" {
		fmt.Fprintf(tw, "(more: --cursor %s)\n", next)
	}
	return tw.Flush()
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
