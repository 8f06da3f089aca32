package approvalgateway

import (
	"slices"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("approval_gateway", parseCaddyfile)
	httpcaddyfile.RegisterDirectiveOrder("approval_gateway", httpcaddyfile.Before, "handle")
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	var g Handler
	err := g.UnmarshalCaddyfile(h.Dispenser)
	return &g, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	approval_gateway {
//		store embedded [<dir>] {
//			listen <client url>
//			listen_peer <peer url>
//			prefix <key prefix>
//		}
//		store etcd {
//			endpoints <url...>
//			prefix <key prefix>
//			tls_ca <file>
//			tls_cert <file>
//			tls_key <file>
//			username <name>
//			password <password>
//			dial_timeout <duration>
//			timeout <duration>
//		}
//		identity placeholder <subject placeholder> {
//			groups_placeholder <placeholder>
//			groups_header <header>
//		}
//		identity jwt {
//			secret <hmac secret>
//			key_file <pem file>          # repeatable
//			jwks_url <url>
//			issuer <iss>
//			audience <aud>
//			algorithms <alg...>
//			subject_claim <path>
//			groups_claim <path>
//			leeway <duration>
//		}
//		policies <dir>
//		query <rego ref>
//		methods <method...>
//		max_body <size>
//		method_override reject|judge
//		ambiguous_paths reject|judge
//		api_prefix <path>
//		admin_groups <group...>
//		approval_expiry <duration>
//		completion_expiry <duration>
//		max_justification <characters>
//		require_approval_notes
//		case_sensitive_subjects
//		max_pending_per_identity <n>
//		complete auto|manual
//		claim_timeout <duration>
//		retention <duration>
//		audit_retention <duration>
//		sweep_interval <duration>
//		policy_approvers <group...>
//		watch_policies true|false
//		notify webhook|slack <url> {    # repeatable
//			secret <secret>
//			events <type...>
//			groups <group...>
//			requesters <subject...>
//		}
//		reminder_lead <duration>
//		replay_credentials sealed {
//			key <base64 of 32 bytes>     # repeatable, newest first
//			header <name>                # repeatable; Authorization always
//		}
//		public_url <url>
//		console {
//			issuer <url>
//			client_id <id>
//			client_secret <secret>
//			redirect_url <url>
//			scopes <scope...>
//			session_ttl <duration>
//		}
//	}
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume the directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	return eachOption(d, 0, nil, func(opt string) error {
		switch opt {
		case "store":
			return h.unmarshalStore(d)
		case "identity":
			if !d.NextArg() {
				return d.ArgErr()
			}
			switch d.Val() {
			case "jwt":
				if d.NextArg() {
					return d.ArgErr()
				}
				j := &JWTConfig{}
				h.Identity = &IdentityConfig{JWT: j}
				return j.unmarshal(d)
			case "placeholder":
				p := &PlaceholderConfig{}
				if err := oneArg(d, &p.Subject); err != nil {
					return err
				}
				h.Identity = &IdentityConfig{Placeholder: p}
				return eachOption(d, d.Nesting(), nil, func(opt string) error {
					switch opt {
					case "groups_placeholder":
						return oneArg(d, &p.GroupsPlaceholder)
					case "groups_header":
						return oneArg(d, &p.GroupsHeader)
					}
					return d.Errf("unknown identity placeholder option %q", opt)
				})
			}
			return d.Errf("unknown identity source %q (want jwt or placeholder)", d.Val())
		case "policies":
			return oneArg(d, &h.Policies)
		case "query":
			return oneArg(d, &h.Query)
		case "methods":
			return someArgs(d, &h.Methods)
		case "max_body":
			var s string
			if err := oneArg(d, &s); err != nil {
				return err
			}
			n, err := humanize.ParseBytes(s)
			if err != nil || n == 0 {
				return d.Errf("max_body: %q is not a size like 1MiB", s)
			}
			h.MaxBody = int64(n)
			return nil
		case "method_override":
			return choiceArg(d, &h.MethodOverride, "reject", "judge")
		case "ambiguous_paths":
			return choiceArg(d, &h.AmbiguousPaths, "reject", "judge")
		case "api_prefix":
			return oneArg(d, &h.APIPrefix)
		case "admin_groups":
			return someArgs(d, &h.AdminGroups)
		case "approval_expiry":
			return durationArg(d, &h.ApprovalExpiry)
		case "completion_expiry":
			return durationArg(d, &h.CompletionExpiry)
		case "max_justification":
			var s string
			if err := oneArg(d, &s); err != nil {
				return err
			}
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 {
				return d.Errf("max_justification: %q is not a positive number", s)
			}
			h.MaxJustification = n
			return nil
		case "max_pending_per_identity":
			var s string
			if err := oneArg(d, &s); err != nil {
				return err
			}
			n, err := strconv.Atoi(s)
			if err != nil || n == 0 || n < -1 {
				return d.Errf("max_pending_per_identity: %q is not a positive number (or -1 for no cap)", s)
			}
			h.MaxPendingPerIdentity = n
			return nil
		case "complete":
			if err := oneArg(d, &h.Complete); err != nil {
				return err
			}
			if h.Complete != "auto" && h.Complete != "manual" {
				return d.Errf("complete: %q is not auto or manual", h.Complete)
			}
			return nil
		case "claim_timeout":
			return durationArg(d, &h.ClaimTimeout)
		case "retention":
			return durationArg(d, &h.Retention)
		case "audit_retention":
			return durationArg(d, &h.AuditRetention)
		case "sweep_interval":
			return durationArg(d, &h.SweepInterval)
		case "console":
			if d.NextArg() {
				return d.ArgErr()
			}
			c := &ConsoleConfig{}
			h.Console = c
			return eachOption(d, d.Nesting(), nil, func(opt string) error {
				switch opt {
				case "issuer":
					return oneArg(d, &c.Issuer)
				case "client_id":
					return oneArg(d, &c.ClientID)
				case "client_secret":
					return oneArg(d, &c.ClientSecret)
				case "redirect_url":
					return oneArg(d, &c.RedirectURL)
				case "scopes":
					return someArgs(d, &c.Scopes)
				case "session_ttl":
					return durationArg(d, &c.SessionTTL)
				}
				return d.Errf("unknown console option %q", opt)
			})
		case "replay_credentials":
			if !d.NextArg() || d.Val() != "sealed" {
				return d.Err("replay_credentials: the only mode is sealed")
			}
			if d.NextArg() {
				return d.ArgErr()
			}
			c := &SealConfig{}
			h.ReplayCredentials = c
			err := eachOption(d, d.Nesting(), []string{"key", "header"}, func(opt string) error {
				var v string
				switch opt {
				case "key":
					err := oneArg(d, &v)
					c.Keys = append(c.Keys, v)
					return err
				case "header":
					err := oneArg(d, &v)
					c.Headers = append(c.Headers, v)
					return err
				}
				return d.Errf("unknown replay_credentials option %q", opt)
			})
			if err == nil && len(c.Keys) == 0 {
				err = d.Err("replay_credentials sealed: at least one key is required")
			}
			return err
		case "reminder_lead":
			return durationArg(d, &h.ReminderLead)
		case "public_url":
			return oneArg(d, &h.PublicURL)
		case "notify":
			n := NotifyConfig{}
			if !d.NextArg() {
				return d.ArgErr()
			}
			n.Format = d.Val()
			if n.Format != "webhook" && n.Format != "slack" {
				return d.Errf("unknown notify target %q (want webhook or slack)", n.Format)
			}
			if err := oneArg(d, &n.URL); err != nil {
				return err
			}
			err := eachOption(d, d.Nesting(), nil, func(opt string) error {
				switch opt {
				case "secret":
					return oneArg(d, &n.Secret)
				case "events":
					return someArgs(d, &n.Events)
				case "groups":
					return someArgs(d, &n.Groups)
				case "requesters":
					return someArgs(d, &n.Requesters)
				}
				return d.Errf("unknown notify option %q", opt)
			})
			h.Notify = append(h.Notify, n)
			return err
		case "policy_approvers":
			return someArgs(d, &h.PolicyApprovers)
		case "watch_policies":
			var s string
			if err := oneArg(d, &s); err != nil {
				return err
			}
			b, err := strconv.ParseBool(s)
			if err != nil {
				return d.Errf("watch_policies: %q is not true or false", s)
			}
			h.WatchPolicies = &b
			return nil
		case "require_approval_notes":
			if d.NextArg() {
				return d.ArgErr()
			}
			h.RequireApprovalNotes = true
			return nil
		case "case_sensitive_subjects":
			if d.NextArg() {
				return d.ArgErr()
			}
			h.CaseSensitiveSubjects = true
			return nil
		}
		return d.Errf("unknown option %q", opt)
	})
}

func (h *Handler) unmarshalStore(d *caddyfile.Dispenser) error {
	if !d.NextArg() {
		return d.ArgErr()
	}
	switch kind := d.Val(); kind {
	case "embedded":
		e := &EmbeddedStore{}
		if d.NextArg() {
			e.Dir = d.Val()
		}
		if d.NextArg() {
			return d.ArgErr()
		}
		h.Store = &StoreConfig{Embedded: e}
		return eachOption(d, d.Nesting(), nil, func(opt string) error {
			switch opt {
			case "listen":
				return oneArg(d, &e.Listen)
			case "listen_peer":
				return oneArg(d, &e.ListenPeer)
			case "prefix":
				return oneArg(d, &e.Prefix)
			}
			return d.Errf("unknown store embedded option %q", opt)
		})
	case "etcd":
		if d.NextArg() {
			return d.ArgErr()
		}
		e := &EtcdStore{}
		h.Store = &StoreConfig{Etcd: e}
		err := eachOption(d, d.Nesting(), nil, func(opt string) error {
			switch opt {
			case "endpoints":
				return someArgs(d, &e.Endpoints)
			case "prefix":
				return oneArg(d, &e.Prefix)
			case "tls_ca":
				return oneArg(d, &e.TLSCA)
			case "tls_cert":
				return oneArg(d, &e.TLSCert)
			case "tls_key":
				return oneArg(d, &e.TLSKey)
			case "username":
				return oneArg(d, &e.Username)
			case "password":
				return oneArg(d, &e.Password)
			case "dial_timeout":
				return durationArg(d, &e.DialTimeout)
			case "timeout":
				return durationArg(d, &e.Timeout)
			}
			return d.Errf("unknown store etcd option %q", opt)
		})
		if err == nil && len(e.Endpoints) == 0 {
			err = d.Err("store etcd: endpoints are required")
		}
		return err
	}
	return d.Errf("unknown store %q (want embedded or etcd)", d.Val())
}

func (j *JWTConfig) unmarshal(d *caddyfile.Dispenser) error {
	err := eachOption(d, d.Nesting(), []string{"key_file"}, func(opt string) error {
		switch opt {
		case "secret":
			return oneArg(d, &j.Secret)
		case "key_file":
			var f string
			err := oneArg(d, &f)
			j.KeyFiles = append(j.KeyFiles, f)
			return err
		case "jwks_url":
			return oneArg(d, &j.JWKSURL)
		case "issuer":
			return oneArg(d, &j.Issuer)
		case "audience":
			return oneArg(d, &j.Audience)
		case "algorithms":
			return someArgs(d, &j.Algorithms)
		case "subject_claim":
			return oneArg(d, &j.SubjectClaim)
		case "groups_claim":
			return oneArg(d, &j.GroupsClaim)
		case "leeway":
			return durationArg(d, &j.Leeway)
		}
		return d.Errf("unknown identity jwt option %q", opt)
	})
	if err != nil {
		return err
	}
	sources := 0
	for _, set := range []bool{j.Secret != "", len(j.KeyFiles) > 0, j.JWKSURL != ""} {
		if set {
			sources++
		}
	}
	if sources != 1 {
		return d.Err("identity jwt: exactly one of secret, key_file or jwks_url is required")
	}
	return nil
}

// eachOption calls fn for each option of the block at nesting, refusing an
// option given twice unless it is repeatable.
func eachOption(d *caddyfile.Dispenser, nesting int, repeatable []string, fn func(opt string) error) error {
	seen := map[string]bool{}
	for d.NextBlock(nesting) {
		opt := d.Val()
		if seen[opt] && !slices.Contains(repeatable, opt) && opt != "notify" {
			return d.Errf("duplicate option %q", opt)
		}
		seen[opt] = true
		if err := fn(opt); err != nil {
			return err
		}
	}
	return nil
}

// someArgs reads one or more arguments into dst.
func someArgs(d *caddyfile.Dispenser, dst *[]string) error {
	if *dst = d.RemainingArgs(); len(*dst) == 0 {
		return d.ArgErr()
	}
	return nil
}

// choiceArg reads exactly one argument, one of choices, into dst.
func choiceArg(d *caddyfile.Dispenser, dst *string, choices ...string) error {
	if err := oneArg(d, dst); err != nil {
		return err
	}
	if !slices.Contains(choices, *dst) {
		return d.Errf("%q is not one of %s", *dst, strings.Join(choices, ", "))
	}
	return nil
}

// oneArg reads exactly one argument into dst.
func oneArg(d *caddyfile.Dispenser, dst *string) error {
	if !d.NextArg() {
		return d.ArgErr()
	}
	*dst = d.Val()
	if d.NextArg() {
		return d.ArgErr()
	}
	return nil
}

func durationArg(d *caddyfile.Dispenser, dst *caddy.Duration) error {
	var s string
	if err := oneArg(d, &s); err != nil {
		return err
	}
	v, err := caddy.ParseDuration(s)
	if err != nil || v <= 0 {
		return d.Errf("%q is not a positive duration", s)
	}
	*dst = caddy.Duration(v)
	return nil
}

// Interface guards
var _ caddyfile.Unmarshaler = (*Handler)(nil)
