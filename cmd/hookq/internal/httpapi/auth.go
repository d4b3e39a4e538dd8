package httpapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
)

// CodeUnauthorized is the error code of a request refused for lack of the
// server's bearer token (401).
const CodeUnauthorized = "unauthorized"

// MinTokenLen is the shortest bearer token ParseToken accepts.
const MinTokenLen = 16

// ParseToken checks a bearer token as read from a file or the environment,
// without the white space around it: at least MinTokenLen characters, all
// of them allowed in an Authorization header's Bearer credentials
// (letters, digits and -._~+/, then = for padding).
func ParseToken(s string) (string, error) {
	tok := strings.TrimSpace(s)
	if len(tok) < MinTokenLen {
		return "", fmt.Errorf("token has %d characters; want at least %d", len(tok), MinTokenLen)
	}
	body := strings.TrimRight(tok, "=")
	if body == "" {
		return "", errors.New("token is all padding (=)")
	}
	for _, c := range body {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9',
			strings.ContainsRune("-._~+/", c):
		default:
			return "", fmt.Errorf("token has the character %q; use letters, digits and -._~+/ "+
				"(base64 or hex from a random source will do)", c)
		}
	}
	return tok, nil
}

// trustedKey and authKey mark a request's context: from a connection that
// needs no token, and carrying the right token.
type (
	trustedKey struct{}
	authKey    struct{}
)

// Trusted returns ctx marked as the base of connections that need no token:
// a server sets it, through http.Server.BaseContext, on the listener of its
// owner-only unix socket, whose file permissions are the access control.
func Trusted(ctx context.Context) context.Context {
	return context.WithValue(ctx, trustedKey{}, true)
}

func trusted(ctx context.Context) bool {
	v, _ := ctx.Value(trustedKey{}).(bool)
	return v
}

// authenticated reports whether the request's context carries a proven
// token or a trusted connection.
func authenticated(ctx context.Context) bool {
	v, _ := ctx.Value(authKey{}).(bool)
	return v || trusted(ctx)
}

// RequireToken returns h guarded by a bearer token (see ParseToken): a
// request must carry "Authorization: Bearer <token>", or it is answered
// 401 with WWW-Authenticate: Bearer. The comparison takes the same time
// wherever the given token differs. Requests on a Trusted connection pass
// without a token, and so does GET /healthz, which tells only whether the
// server is up. Refused requests are logged at Debug on logger (nil: not
// logged).
func RequireToken(h http.Handler, token string, logger *slog.Logger) http.Handler {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	want := sha256.Sum256([]byte(token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case trusted(r.Context()):
		case (r.Method == http.MethodGet || r.Method == http.MethodHead) && r.URL.Path == "/healthz":
		default:
			got, ok := bearer(r)
			sum := sha256.Sum256([]byte(got))
			if !ok || subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
				challenge := `Bearer realm="hookq"`
				msg := "this server wants a bearer token: send Authorization: Bearer <token>"
				if ok {
					challenge += `, error="invalid_token"`
					msg = "the bearer token is not this server's"
				}
				w.Header().Set("WWW-Authenticate", challenge)
				writeError(w, http.StatusUnauthorized, CodeUnauthorized, msg)
				logger.Debug("http request", slog.String(keyMethod, r.Method),
					slog.String(keyPath, r.URL.Path), slog.Int(keyStatus, http.StatusUnauthorized),
					slog.String("remote", r.RemoteAddr), slog.Bool("token_sent", ok))
				return
			}
			r = r.WithContext(context.WithValue(r.Context(), authKey{}, true))
		}
		h.ServeHTTP(w, r)
	})
}

// bearer returns the token of the request's Authorization header, and
// whether it has one with the Bearer scheme (in any case).
func bearer(r *http.Request) (string, bool) {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}
