package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/golang-jwt/jwt/v5"
	"github.com/spf13/cobra"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "token",
		Usage: "--sub <subject> [--groups <g1,g2>] [--secret <hmac secret>] [--issuer <iss>] [--audience <aud>] [--ttl <duration>]",
		Short: "Mints an HS256 token for local use",
		Long: `
Mints a signed HS256 JWT for trying the gateway locally. The secret comes
from --secret or the JWT_SECRET environment variable and must match the
"secret" of the identity jwt block. Do not use this in place of an identity
provider.`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.Flags().String("sub", "", "subject (who the token is for)")
			cmd.Flags().String("groups", "", "comma-separated groups")
			cmd.Flags().String("secret", "", "HMAC secret (default: $JWT_SECRET)")
			cmd.Flags().String("issuer", "", "iss claim")
			cmd.Flags().String("audience", "", "aud claim")
			cmd.Flags().Duration("ttl", 8*time.Hour, "lifetime")
			cmd.RunE = caddycmd.WrapCommandFuncForCobra(cmdToken)
		},
	})
}

func cmdToken(fl caddycmd.Flags) (int, error) {
	secret := fl.String("secret")
	if secret == "" {
		secret = os.Getenv("JWT_SECRET")
	}
	if secret == "" {
		return exitFailure, errors.New("no secret: pass --secret or set JWT_SECRET")
	}
	tok, err := mintToken(secret, fl.String("sub"), splitList(fl.String("groups")), fl.String("issuer"), fl.String("audience"), fl.Duration("ttl"))
	if err != nil {
		return exitFailure, err
	}
	fmt.Println(tok)
	return 0, nil
}

// exitFailure is the exit code of a failed command.
const exitFailure = 1

// mintToken signs a token with the claims the gateway reads.
func mintToken(secret, sub string, groups []string, issuer, audience string, ttl time.Duration) (string, error) {
	if sub == "" {
		return "", errors.New("--sub is required")
	}
	if ttl <= 0 {
		return "", errors.New("--ttl must be positive")
	}
	now := time.Now()
	c := jwt.MapClaims{"sub": sub, "groups": groups, "iat": now.Unix(), "exp": now.Add(ttl).Unix()}
	if issuer != "" {
		c["iss"] = issuer
	}
	if audience != "" {
		c["aud"] = audience
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString([]byte(secret))
}

func splitList(s string) []string {
	out := []string{}
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
