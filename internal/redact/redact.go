// Package redact hides the userinfo of URLs (the user:password@ before
// the host), which often holds a credential, wherever hookq shows a URL:
// in output, logs and error messages, including messages about URLs that
// do not parse.
package redact

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Mask is what a URL's userinfo reads as once hidden.
const Mask = "xxxxx"

// URL returns raw with its userinfo, if any, replaced by Mask. A URL that
// does not parse has its userinfo cut out by hand, where url.Parse would
// look for it: after the first "//", up to the last "@" before the next
// "/", "?" or "#".
func URL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return cut(raw)
	}
	if u.User == nil {
		return raw
	}
	u.User = url.User(Mask)
	return u.String()
}

// cut returns raw with the userinfo of its authority replaced by Mask,
// without parsing the rest.
func cut(raw string) string {
	i := strings.Index(raw, "//")
	if i < 0 {
		return raw
	}
	start := i + 2
	end := len(raw)
	if j := strings.IndexAny(raw[start:], "/?#"); j >= 0 {
		end = start + j
	}
	at := strings.LastIndex(raw[start:end], "@")
	if at < 0 {
		return raw
	}
	return raw[:start] + Mask + raw[start+at:]
}

// ParseURL parses raw as url.Parse does, but its error never holds raw's
// userinfo: it quotes the URL with the userinfo hidden, and gives the
// reason url.Parse finds in that hidden form (the reason for raw itself
// may quote a piece of a password).
func ParseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err == nil {
		return u, nil
	}
	shown := cut(raw)
	if shown != raw {
		_, err = url.Parse(shown)
		if err == nil {
			return nil, fmt.Errorf("parse %q: its userinfo (user:password@) is not valid", shown)
		}
	}
	return nil, fmt.Errorf("parse %q: %s", shown, reason(err))
}

// reason returns what url.Parse found wrong, without the URL it quotes.
func reason(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return strings.TrimPrefix(err.Error(), "net/url: ")
}
