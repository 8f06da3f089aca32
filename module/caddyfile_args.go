package approvalgateway

import (
	"slices"
	"strconv"
	"strings"

	"github.com/approval-gateway/gateway/module/approvals"
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/dustin/go-humanize"
)

// The argument readers: each returns a parser of an option's arguments
// into dst.

// oneArg reads exactly one argument.
func oneArg(dst *string) func(*caddyfile.Dispenser) error {
	return func(d *caddyfile.Dispenser) error {
		if !d.NextArg() {
			return d.ArgErr()
		}
		*dst = d.Val()
		if d.NextArg() {
			return d.ArgErr()
		}
		return nil
	}
}

// appendArg reads one argument and appends it (a repeatable option).
func appendArg(dst *[]string) func(*caddyfile.Dispenser) error {
	return func(d *caddyfile.Dispenser) error {
		var v string
		err := oneArg(&v)(d)
		*dst = append(*dst, v)
		return err
	}
}

// someArgs reads one or more arguments.
func someArgs(dst *[]string) func(*caddyfile.Dispenser) error {
	return func(d *caddyfile.Dispenser) error {
		if *dst = d.RemainingArgs(); len(*dst) == 0 {
			return d.ArgErr()
		}
		return nil
	}
}

// choiceArg reads exactly one argument, one of choices.
func choiceArg(dst *string, choices ...string) func(*caddyfile.Dispenser) error {
	return func(d *caddyfile.Dispenser) error {
		if err := oneArg(dst)(d); err != nil {
			return err
		}
		if !slices.Contains(choices, *dst) {
			return d.Errf("%q is not one of %s", *dst, strings.Join(choices, ", "))
		}
		return nil
	}
}

// durationArg reads a positive duration (1h30m, 2d).
func durationArg(dst *caddy.Duration) func(*caddyfile.Dispenser) error {
	return func(d *caddyfile.Dispenser) error {
		var s string
		if err := oneArg(&s)(d); err != nil {
			return err
		}
		v, err := caddy.ParseDuration(s)
		if err != nil || v <= 0 {
			return d.Errf("%q is not a positive duration", s)
		}
		*dst = caddy.Duration(v)
		return nil
	}
}

// sizeArg reads a size (1MiB, 512KB).
func sizeArg(dst *int64) func(*caddyfile.Dispenser) error {
	return func(d *caddyfile.Dispenser) error {
		var s string
		if err := oneArg(&s)(d); err != nil {
			return err
		}
		n, err := humanize.ParseBytes(s)
		if err != nil || n == 0 {
			return d.Errf("%q is not a size like 1MiB", s)
		}
		*dst = int64(n)
		return nil
	}
}

// intArg reads a whole number.
func intArg(dst *int) func(*caddyfile.Dispenser) error {
	return func(d *caddyfile.Dispenser) error {
		var s string
		if err := oneArg(&s)(d); err != nil {
			return err
		}
		n, err := strconv.Atoi(s)
		if err != nil {
			return d.Errf("%q is not a whole number", s)
		}
		*dst = n
		return nil
	}
}

// boolArg reads true or false.
func boolArg(dst **bool) func(*caddyfile.Dispenser) error {
	return func(d *caddyfile.Dispenser) error {
		var s string
		if err := oneArg(&s)(d); err != nil {
			return err
		}
		b, err := strconv.ParseBool(s)
		if err != nil {
			return d.Errf("%q is not true or false", s)
		}
		*dst = &b
		return nil
	}
}

// flag reads an option without arguments, which sets dst.
// siteArg reads a site name, checked where it is written.
func siteArg(dst *string) func(*caddyfile.Dispenser) error {
	read := oneArg(dst)
	return func(d *caddyfile.Dispenser) error {
		if err := read(d); err != nil {
			return err
		}
		return validated(d, approvals.ValidateSite(*dst))
	}
}

func flag(dst *bool) func(*caddyfile.Dispenser) error {
	return func(d *caddyfile.Dispenser) error {
		if d.NextArg() {
			return d.ArgErr()
		}
		*dst = true
		return nil
	}
}
