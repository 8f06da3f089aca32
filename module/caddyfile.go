package approvalgateway

import (
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("approval_gateway", parseCaddyfile)
	httpcaddyfile.RegisterDirectiveOrder("approval_gateway", httpcaddyfile.Before, "reverse_proxy")
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
//		api_prefix <path>
//		admin_groups <group...>
//		approval_expiry <duration>
//		completion_expiry <duration>
//		max_justification <characters>
//		require_approval_notes
//	}
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume the directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := map[string]bool{}
	for d.NextBlock(0) {
		opt := d.Val()
		if seen[opt] && opt != "store" {
			return d.Errf("duplicate option %q", opt)
		}
		seen[opt] = true
		switch opt {
		case "store":
			if h.Store != nil {
				return d.Err("duplicate option \"store\"")
			}
			if err := h.unmarshalStore(d); err != nil {
				return err
			}
		case "identity":
			if !d.NextArg() {
				return d.ArgErr()
			}
			if d.Val() != "jwt" {
				return d.Errf("unknown identity source %q (want jwt)", d.Val())
			}
			if d.NextArg() {
				return d.ArgErr()
			}
			j := &JWTConfig{}
			if err := j.unmarshal(d); err != nil {
				return err
			}
			h.Identity = &IdentityConfig{JWT: j}
		case "policies":
			if err := oneArg(d, &h.Policies); err != nil {
				return err
			}
		case "query":
			if err := oneArg(d, &h.Query); err != nil {
				return err
			}
		case "methods":
			h.Methods = d.RemainingArgs()
			if len(h.Methods) == 0 {
				return d.ArgErr()
			}
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
		case "api_prefix":
			if err := oneArg(d, &h.APIPrefix); err != nil {
				return err
			}
		case "admin_groups":
			h.AdminGroups = d.RemainingArgs()
			if len(h.AdminGroups) == 0 {
				return d.ArgErr()
			}
		case "approval_expiry":
			if err := durationArg(d, &h.ApprovalExpiry); err != nil {
				return err
			}
		case "completion_expiry":
			if err := durationArg(d, &h.CompletionExpiry); err != nil {
				return err
			}
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
		case "require_approval_notes":
			if d.NextArg() {
				return d.ArgErr()
			}
			h.RequireApprovalNotes = true
		default:
			return d.Errf("unknown option %q", opt)
		}
	}
	return nil
}

func (h *Handler) unmarshalStore(d *caddyfile.Dispenser) error {
	if !d.NextArg() {
		return d.ArgErr()
	}
	seen := map[string]bool{}
	switch kind := d.Val(); kind {
	case "embedded":
		e := &EmbeddedStore{}
		if d.NextArg() {
			e.Dir = d.Val()
		}
		if d.NextArg() {
			return d.ArgErr()
		}
		for nesting := d.Nesting(); d.NextBlock(nesting); {
			opt := d.Val()
			if seen[opt] {
				return d.Errf("duplicate option %q", opt)
			}
			seen[opt] = true
			var err error
			switch opt {
			case "listen":
				err = oneArg(d, &e.Listen)
			case "listen_peer":
				err = oneArg(d, &e.ListenPeer)
			case "prefix":
				err = oneArg(d, &e.Prefix)
			default:
				err = d.Errf("unknown store embedded option %q", opt)
			}
			if err != nil {
				return err
			}
		}
		h.Store = &StoreConfig{Embedded: e}
	case "etcd":
		if d.NextArg() {
			return d.ArgErr()
		}
		e := &EtcdStore{}
		for nesting := d.Nesting(); d.NextBlock(nesting); {
			opt := d.Val()
			if seen[opt] {
				return d.Errf("duplicate option %q", opt)
			}
			seen[opt] = true
			var err error
			switch opt {
			case "endpoints":
				if e.Endpoints = d.RemainingArgs(); len(e.Endpoints) == 0 {
					err = d.ArgErr()
				}
			case "prefix":
				err = oneArg(d, &e.Prefix)
			case "tls_ca":
				err = oneArg(d, &e.TLSCA)
			case "tls_cert":
				err = oneArg(d, &e.TLSCert)
			case "tls_key":
				err = oneArg(d, &e.TLSKey)
			case "username":
				err = oneArg(d, &e.Username)
			case "password":
				err = oneArg(d, &e.Password)
			case "dial_timeout":
				err = durationArg(d, &e.DialTimeout)
			case "timeout":
				err = durationArg(d, &e.Timeout)
			default:
				err = d.Errf("unknown store etcd option %q", opt)
			}
			if err != nil {
				return err
			}
		}
		if len(e.Endpoints) == 0 {
			return d.Err("store etcd: endpoints are required")
		}
		h.Store = &StoreConfig{Etcd: e}
	default:
		return d.Errf("unknown store %q (want embedded or etcd)", kind)
	}
	return nil
}

func (j *JWTConfig) unmarshal(d *caddyfile.Dispenser) error {
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		if seen[opt] && opt != "key_file" {
			return d.Errf("duplicate option %q", opt)
		}
		seen[opt] = true
		var err error
		switch opt {
		case "secret":
			err = oneArg(d, &j.Secret)
		case "key_file":
			var f string
			if err = oneArg(d, &f); err == nil {
				j.KeyFiles = append(j.KeyFiles, f)
			}
		case "jwks_url":
			err = oneArg(d, &j.JWKSURL)
		case "issuer":
			err = oneArg(d, &j.Issuer)
		case "audience":
			err = oneArg(d, &j.Audience)
		case "algorithms":
			if j.Algorithms = d.RemainingArgs(); len(j.Algorithms) == 0 {
				err = d.ArgErr()
			}
		case "subject_claim":
			err = oneArg(d, &j.SubjectClaim)
		case "groups_claim":
			err = oneArg(d, &j.GroupsClaim)
		case "leeway":
			err = durationArg(d, &j.Leeway)
		default:
			err = d.Errf("unknown identity jwt option %q", opt)
		}
		if err != nil {
			return err
		}
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
