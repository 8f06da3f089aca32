package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/approval-gateway/gateway/module/record"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// PolicyDoc is one version of a runtime policy.
type PolicyDoc struct {
	Name       string         `json:"name"`
	Version    int            `json:"version"`
	Rego       string         `json:"rego,omitempty"`
	Data       map[string]any `json:"data,omitempty"`
	Deleted    bool           `json:"deleted,omitempty"`
	ProposedBy string         `json:"proposed_by"`
	ApprovedBy []string       `json:"approved_by"`
	RequestID  string         `json:"request_id"`
	At         time.Time      `json:"at"`
}

func (s *Store) policyKey(name string) string { return s.prefix + "policies/" + name }
func (s *Store) policyVersionKey(name string, v int) string {
	return fmt.Sprintf("%spolicy-versions/%s/%08d", s.prefix, name, v)
}

// ErrPolicyChanged is returned when a policy changed since its proposal
// was read.
var ErrPolicyChanged = errors.New("the policy changed since this version was proposed")

// RuntimePolicies returns the runtime policies in force and the store
// revision they were read at.
func (s *Store) RuntimePolicies(ctx context.Context) ([]PolicyDoc, int64, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Get(ctx, s.prefix+"policies/", clientv3.WithPrefix())
	if err != nil {
		return nil, 0, unavailable(err)
	}
	out := make([]PolicyDoc, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var d PolicyDoc
		if err := json.Unmarshal(kv.Value, &d); err != nil {
			return nil, 0, fmt.Errorf("decoding policy %s: %w", kv.Key, err)
		}
		out = append(out, d)
	}
	return out, resp.Header.Revision, nil
}

// PolicyVersions returns every version of a runtime policy, oldest first.
func (s *Store) PolicyVersions(ctx context.Context, name string) ([]PolicyDoc, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Get(ctx, s.prefix+"policy-versions/"+name+"/", clientv3.WithPrefix())
	if err != nil {
		return nil, unavailable(err)
	}
	out := make([]PolicyDoc, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var d PolicyDoc
		if err := json.Unmarshal(kv.Value, &d); err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

// ApplyPolicy puts doc in force as the next version of its policy (or
// removes the policy when doc.Deleted), keeping the version in the history
// and appending an audit event, in one transaction fenced on the version
// in force.
func (s *Store) ApplyPolicy(ctx context.Context, doc PolicyDoc) (PolicyDoc, error) {
	key := s.policyKey(doc.Name)
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	cur, err := s.cli.Get(ctx, key)
	if err != nil {
		return doc, unavailable(err)
	}
	rev, version := int64(0), 0
	if len(cur.Kvs) == 1 {
		var c PolicyDoc
		if err := json.Unmarshal(cur.Kvs[0].Value, &c); err != nil {
			return doc, err
		}
		rev, version = cur.Kvs[0].ModRevision, c.Version
	} else if doc.Deleted {
		return doc, ErrNotFound
	}
	if latest, err := s.PolicyVersions(ctx, doc.Name); err == nil && len(latest) > 0 {
		version = max(version, latest[len(latest)-1].Version)
	}
	doc.Version = version + 1
	b, err := json.Marshal(doc)
	if err != nil {
		return doc, err
	}
	action := "policy_changed"
	ops := []clientv3.Op{clientv3.OpPut(s.policyVersionKey(doc.Name, doc.Version), string(b))}
	if doc.Deleted {
		action = "policy_removed"
		ops = append(ops, clientv3.OpDelete(key))
	} else {
		ops = append(ops, clientv3.OpPut(key, string(b)))
	}
	audit, err := s.auditEvents(&record.Record{ID: doc.RequestID, Policy: "gateway-policies", Resource: "policies/" + doc.Name,
		Requester: record.Principal{Subject: doc.ProposedBy}},
		[]record.Event{{At: doc.At, Actor: record.SystemActor, Action: action,
			Notes: fmt.Sprintf("%s version %d, approved by %s", doc.Name, doc.Version, strings.Join(doc.ApprovedBy, ", "))}}, "")
	if err != nil {
		return doc, err
	}
	resp, err := s.commit(ctx, []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(key), "=", rev)}, ops, audit, nil)
	if err != nil {
		return doc, err
	}
	if !resp.Succeeded {
		return doc, ErrPolicyChanged
	}
	return doc, nil
}

// WatchPolicies calls fn whenever the runtime policies change after rev,
// until ctx ends; after a broken watch it calls fn too, so the caller
// re-reads the whole set.
func (s *Store) WatchPolicies(ctx context.Context, rev int64, fn func()) {
	s.follow(ctx, s.prefix+"policies/", rev, func(_ int64, evs []*clientv3.Event) {
		if len(evs) > 0 {
			fn()
		}
	}, fn)
}
