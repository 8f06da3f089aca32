package console

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"

	"github.com/approval-gateway/gateway/module/identity"
)

// Sessions: the login cookie (across the provider's round trip) and the
// session cookie are sealed with AES-GCM under a key every gateway shares
// through the store; the session is also kept in the store, so a sign-out
// ends it everywhere; forms carry a CSRF token bound to the session.

const (
	sessionCookie = "approval_session"
	loginCookie   = "approval_login"
)

// keys loads the sealing and CSRF keys from the store's shared secret, so
// every gateway accepts every other's cookies.
func (c *Console) keys(ctx context.Context) (cipher.AEAD, []byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.aead != nil {
		return c.aead, c.csrfKey, nil
	}
	secret, err := c.store.SharedSecret(ctx, "console")
	if err != nil {
		return nil, nil, err
	}
	sealKey := sha256.Sum256(append([]byte("approval-console-seal:"), secret...))
	block, err := aes.NewCipher(sealKey[:])
	if err != nil {
		return nil, nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, nil, err
	}
	csrf := sha256.Sum256(append([]byte("approval-console-csrf:"), secret...))
	c.aead, c.csrfKey = aead, csrf[:]
	return c.aead, c.csrfKey, nil
}

// session is what the sealed session cookie holds.
type session struct {
	Subject string   `json:"s"`
	Groups  []string `json:"g"`
	Expires int64    `json:"e"`
	ID      string   `json:"i"`
	// Token is the provider's access token: the replay of a completion
	// made in the console carries it, as the API's carries the caller's.
	Token string `json:"t,omitempty"`
	// Auth is the authentication the ID token stated (auth_time, acr,
	// amr), which a policy's approver_auth may ask of approvers.
	Auth map[string]any `json:"a,omitempty"`
}

func (c *Console) seal(ctx context.Context, purpose string, v any) (string, error) {
	aead, _, err := c.keys(ctx)
	if err != nil {
		return "", err
	}
	plain, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(aead.Seal(nonce, nonce, plain, []byte(purpose))), nil
}

func (c *Console) open(ctx context.Context, purpose, value string, v any) error {
	aead, _, err := c.keys(ctx)
	if err != nil {
		return err
	}
	raw, err := base64.RawURLEncoding.DecodeString(value)
	if err != nil || len(raw) < aead.NonceSize() {
		return errors.New("malformed cookie")
	}
	plain, err := aead.Open(nil, raw[:aead.NonceSize()], raw[aead.NonceSize():], []byte(purpose))
	if err != nil {
		return errors.New("cookie does not open")
	}
	return json.Unmarshal(plain, v)
}

// setCookie writes a cookie scoped to the console: HttpOnly, SameSite=Lax
// (the provider's redirect back is a top-level navigation), and Secure
// except over plain HTTP to a loopback address, where browsers would drop
// it.
func (c *Console) setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: value, Path: c.prefix + "/", MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: r.TLS != nil || !isLoopback(r.Host),
	})
}

func isLoopback(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// user returns the session of the request, if any and valid: its cookie
// opens, it has not expired, and the store still holds it (a sign-out on
// any gateway removes it). err is a store failure: no session can be
// trusted then.
func (c *Console) user(r *http.Request) (*session, *identity.Identity, error) {
	if c.o.RequestIdentity {
		who, err := c.ident.Authenticate(r)
		if err != nil {
			return nil, nil, nil
		}
		// No login and no cookie: the CSRF token is bound to the subject.
		return &session{Subject: who.Subject, Groups: who.Groups, ID: "request:" + who.Subject}, who, nil
	}
	ck, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil, nil, nil
	}
	var sess session
	if err := c.open(r.Context(), "session", ck.Value, &sess); err != nil || c.clock().Unix() > sess.Expires || sess.Subject == "" {
		return nil, nil, nil
	}
	open, err := c.store.SessionOpen(r.Context(), sess.ID)
	if err != nil || !open {
		return nil, nil, err
	}
	return &sess, &identity.Identity{Subject: sess.Subject, Groups: sess.Groups, Claims: sess.Auth}, nil
}

func (c *Console) csrfToken(ctx context.Context, sess *session) string {
	_, key, err := c.keys(ctx)
	if err != nil {
		return ""
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(sess.ID))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// checkPost refuses a form post without the session's CSRF token or from
// another origin.
func (c *Console) checkPost(r *http.Request, sess *session) bool {
	want := c.csrfToken(r.Context(), sess)
	if want == "" || !hmac.Equal([]byte(r.PostFormValue("csrf")), []byte(want)) {
		return false
	}
	from := r.Header.Get("Origin")
	if from == "" || from == "null" {
		from = r.Header.Get("Referer")
	}
	u, err := url.Parse(from)
	return err == nil && u.Host != "" && u.Host == r.Host
}
