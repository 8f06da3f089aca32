package approvalgateway

import (
	"slices"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
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
//		site <name>
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
//		checkpoint_interval <duration>
//		policy_approvers <group...>
//		watch_policies true|false
//		notify webhook|slack <url> {    # repeatable
//			secret <secret>
//			events <type...>
//			groups <group...>
//			requesters <subject...>
//		}
//		notify_retry {
//			base <duration>
//			max <duration>
//			attempts <n>
//		}
//		reminder_lead <duration>
//		replay_credentials sealed {
//			key <base64 of 32 bytes>     # repeatable, newest first
//			header <name>                # repeatable; Authorization always
//		}
//		public_url <url>
//		attestation {
//			issuer <iss>
//			audience <aud>
//			rotate <duration>
//		}
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
	options := h.options()
	return eachOption(d, 0, []string{"notify"}, func(opt string) error {
		if parse, ok := options[opt]; ok {
			return parse(d)
		}
		return d.Errf("unknown option %q", opt)
	})
}

// options maps each option to its parser: the simple ones read their
// arguments into a field, the blocks have a method each.
func (h *Handler) options() map[string]func(*caddyfile.Dispenser) error {
	return map[string]func(*caddyfile.Dispenser) error{
		"store":                    h.unmarshalStore,
		"identity":                 h.unmarshalIdentity,
		"notify":                   h.unmarshalNotify,
		"notify_retry":             h.unmarshalNotifyRetry,
		"console":                  h.unmarshalConsole,
		"attestation":              h.unmarshalAttestation,
		"replay_credentials":       h.unmarshalSeal,
		"site":                     siteArg(&h.Site),
		"policies":                 oneArg(&h.Policies),
		"query":                    oneArg(&h.Query),
		"methods":                  someArgs(&h.Methods),
		"max_body":                 sizeArg(&h.MaxBody),
		"method_override":          choiceArg(&h.MethodOverride, "reject", "judge"),
		"ambiguous_paths":          choiceArg(&h.AmbiguousPaths, "reject", "judge"),
		"api_prefix":               oneArg(&h.APIPrefix),
		"admin_groups":             someArgs(&h.AdminGroups),
		"policy_approvers":         someArgs(&h.PolicyApprovers),
		"approval_expiry":          durationArg(&h.ApprovalExpiry),
		"completion_expiry":        durationArg(&h.CompletionExpiry),
		"claim_timeout":            durationArg(&h.ClaimTimeout),
		"retention":                durationArg(&h.Retention),
		"audit_retention":          durationArg(&h.AuditRetention),
		"sweep_interval":           durationArg(&h.SweepInterval),
		"checkpoint_interval":      durationArg(&h.CheckpointInterval),
		"reminder_lead":            durationArg(&h.ReminderLead),
		"max_justification":        intArg(&h.MaxJustification),
		"max_pending_per_identity": intArg(&h.MaxPendingPerIdentity),
		"complete":                 choiceArg(&h.Complete, "auto", "manual"),
		"public_url":               oneArg(&h.PublicURL),
		"watch_policies":           boolArg(&h.WatchPolicies),
		"require_approval_notes":   flag(&h.RequireApprovalNotes),
		"case_sensitive_subjects":  flag(&h.CaseSensitiveSubjects),
	}
}

// validated reports a block's validation error at the current token.
func validated(d *caddyfile.Dispenser, err error) error {
	if err != nil {
		return d.Errf("%v", err)
	}
	return nil
}

func (h *Handler) unmarshalStore(d *caddyfile.Dispenser) error {
	if !d.NextArg() {
		return d.ArgErr()
	}
	switch d.Val() {
	case "embedded":
		e := &EmbeddedStore{}
		if d.NextArg() {
			e.Dir = d.Val()
		}
		if d.NextArg() {
			return d.ArgErr()
		}
		h.Store = &StoreConfig{Embedded: e}
		return eachOption(d, d.Nesting(), nil, block(d, "store embedded", map[string]func(*caddyfile.Dispenser) error{
			"listen":      oneArg(&e.Listen),
			"listen_peer": oneArg(&e.ListenPeer),
			"prefix":      oneArg(&e.Prefix),
		}))
	case "etcd":
		if d.NextArg() {
			return d.ArgErr()
		}
		e := &EtcdStore{}
		h.Store = &StoreConfig{Etcd: e}
		err := eachOption(d, d.Nesting(), nil, block(d, "store etcd", map[string]func(*caddyfile.Dispenser) error{
			"endpoints":    someArgs(&e.Endpoints),
			"prefix":       oneArg(&e.Prefix),
			"tls_ca":       oneArg(&e.TLSCA),
			"tls_cert":     oneArg(&e.TLSCert),
			"tls_key":      oneArg(&e.TLSKey),
			"username":     oneArg(&e.Username),
			"password":     oneArg(&e.Password),
			"dial_timeout": durationArg(&e.DialTimeout),
			"timeout":      durationArg(&e.Timeout),
		}))
		if err != nil {
			return err
		}
		return validated(d, h.Store.validate())
	}
	return d.Errf("unknown store %q (want embedded or etcd)", d.Val())
}

func (h *Handler) unmarshalIdentity(d *caddyfile.Dispenser) error {
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
		err := eachOption(d, d.Nesting(), []string{"key_file"}, block(d, "identity jwt", map[string]func(*caddyfile.Dispenser) error{
			"secret":        oneArg(&j.Secret),
			"key_file":      appendArg(&j.KeyFiles),
			"jwks_url":      oneArg(&j.JWKSURL),
			"issuer":        oneArg(&j.Issuer),
			"audience":      oneArg(&j.Audience),
			"algorithms":    someArgs(&j.Algorithms),
			"subject_claim": oneArg(&j.SubjectClaim),
			"groups_claim":  oneArg(&j.GroupsClaim),
			"leeway":        durationArg(&j.Leeway),
		}))
		if err != nil {
			return err
		}
		return validated(d, h.Identity.validate())
	case "placeholder":
		p := &PlaceholderConfig{}
		if err := oneArg(&p.Subject)(d); err != nil {
			return err
		}
		h.Identity = &IdentityConfig{Placeholder: p}
		return eachOption(d, d.Nesting(), nil, block(d, "identity placeholder", map[string]func(*caddyfile.Dispenser) error{
			"groups_placeholder": oneArg(&p.GroupsPlaceholder),
			"groups_header":      oneArg(&p.GroupsHeader),
		}))
	}
	return d.Errf("unknown identity source %q (want jwt or placeholder)", d.Val())
}

func (h *Handler) unmarshalNotify(d *caddyfile.Dispenser) error {
	n := NotifyConfig{}
	if !d.NextArg() {
		return d.ArgErr()
	}
	n.Format = d.Val()
	if err := oneArg(&n.URL)(d); err != nil {
		return err
	}
	err := eachOption(d, d.Nesting(), nil, block(d, "notify", map[string]func(*caddyfile.Dispenser) error{
		"secret":     oneArg(&n.Secret),
		"events":     someArgs(&n.Events),
		"groups":     someArgs(&n.Groups),
		"requesters": someArgs(&n.Requesters),
	}))
	if err != nil {
		return err
	}
	h.Notify = append(h.Notify, n)
	return validated(d, n.validate())
}

func (h *Handler) unmarshalNotifyRetry(d *caddyfile.Dispenser) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	r := &NotifyRetry{}
	h.NotifyRetry = r
	err := eachOption(d, d.Nesting(), nil, block(d, "notify_retry", map[string]func(*caddyfile.Dispenser) error{
		"base":     durationArg(&r.Base),
		"max":      durationArg(&r.Max),
		"attempts": intArg(&r.Attempts),
	}))
	if err != nil {
		return err
	}
	return validated(d, r.validate())
}

func (h *Handler) unmarshalAttestation(d *caddyfile.Dispenser) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	a := &AttestationConfig{}
	h.Attestation = a
	err := eachOption(d, d.Nesting(), nil, block(d, "attestation", map[string]func(*caddyfile.Dispenser) error{
		"issuer":   oneArg(&a.Issuer),
		"audience": oneArg(&a.Audience),
		"rotate":   durationArg(&a.Rotate),
	}))
	if err != nil {
		return err
	}
	return validated(d, a.validate())
}

func (h *Handler) unmarshalConsole(d *caddyfile.Dispenser) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	c := &ConsoleConfig{}
	h.Console = c
	return eachOption(d, d.Nesting(), nil, block(d, "console", map[string]func(*caddyfile.Dispenser) error{
		"issuer":        oneArg(&c.Issuer),
		"client_id":     oneArg(&c.ClientID),
		"client_secret": oneArg(&c.ClientSecret),
		"redirect_url":  oneArg(&c.RedirectURL),
		"scopes":        someArgs(&c.Scopes),
		"session_ttl":   durationArg(&c.SessionTTL),
	}))
}

func (h *Handler) unmarshalSeal(d *caddyfile.Dispenser) error {
	if !d.NextArg() || d.Val() != "sealed" {
		return d.Err("replay_credentials: the only mode is sealed")
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	c := &SealConfig{}
	h.ReplayCredentials = c
	err := eachOption(d, d.Nesting(), []string{"key", "header"}, block(d, "replay_credentials", map[string]func(*caddyfile.Dispenser) error{
		"key":    appendArg(&c.Keys),
		"header": appendArg(&c.Headers),
	}))
	if err != nil {
		return err
	}
	return validated(d, c.validate())
}

// block returns the option handler of a block named name.
func block(d *caddyfile.Dispenser, name string, options map[string]func(*caddyfile.Dispenser) error) func(string) error {
	return func(opt string) error {
		if parse, ok := options[opt]; ok {
			return parse(d)
		}
		return d.Errf("unknown %s option %q", name, opt)
	}
}

// eachOption calls fn for each option of the block at nesting, refusing an
// option given twice unless it is repeatable.
func eachOption(d *caddyfile.Dispenser, nesting int, repeatable []string, fn func(opt string) error) error {
	seen := map[string]bool{}
	for d.NextBlock(nesting) {
		opt := d.Val()
		if seen[opt] && !slices.Contains(repeatable, opt) {
			return d.Errf("duplicate option %q", opt)
		}
		seen[opt] = true
		if err := fn(opt); err != nil {
			return err
		}
	}
	return nil
}

// Interface guards
var _ caddyfile.Unmarshaler = (*Handler)(nil)
