package redact

import (
	"encoding/json"
	"net/url"
	"strings"
)

// sensitiveWords are parts of names (headers, query parameters, task
// arguments) whose values are credentials.
var sensitiveWords = []string{"authorization", "cookie", "token", "secret", "password",
	"passwd", "api-key", "api_key", "apikey", "key", "signature"}

// Sensitive reports whether a header, query parameter or argument named
// name likely holds a credential (Authorization, X-Api-Key, access_token,
// ...). The match is on parts of the name, in any case, and errs on the
// side of hiding.
func Sensitive(name string) bool {
	lower := strings.ToLower(name)
	for _, w := range sensitiveWords {
		if strings.Contains(lower, w) {
			return true
		}
	}
	return false
}

// Display returns raw for people and logs: URL with its userinfo and the
// values of query parameters whose names are Sensitive replaced by Mask.
// The rest of the query is kept as written.
func Display(raw string) string {
	shown := URL(raw)
	base, query, ok := strings.Cut(shown, "?")
	if !ok || query == "" {
		return shown
	}
	query, frag, hasFrag := strings.Cut(query, "#")
	parts := strings.Split(query, "&")
	for i, p := range parts {
		k, _, hasValue := strings.Cut(p, "=")
		name, err := url.QueryUnescape(k)
		if err != nil {
			name = k
		}
		if hasValue && Sensitive(name) {
			parts[i] = k + "=" + Mask
		}
	}
	out := base + "?" + strings.Join(parts, "&")
	if hasFrag {
		out += "#" + frag
	}
	return out
}

// Args returns a task's arguments (a JSON object) for people and logs, with
// the values of Sensitive names replaced by Mask. Anything that is not a
// JSON object comes back as it is.
func Args(raw json.RawMessage) json.RawMessage {
	var args map[string]json.RawMessage
	if json.Unmarshal(raw, &args) != nil {
		return raw
	}
	masked := false
	for k := range args {
		if Sensitive(k) {
			args[k] = json.RawMessage(`"` + Mask + `"`)
			masked = true
		}
	}
	if !masked {
		return raw
	}
	out, err := json.Marshal(args) // keys sorted, as stored
	if err != nil {
		return raw
	}
	return out
}
