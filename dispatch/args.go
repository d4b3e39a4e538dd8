package dispatch

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"unicode/utf8"
)

// EncodeArgs turns a task's JSON arguments, an object, into the values Do
// sends. A string is sent as it is, a number as written in the JSON, a
// boolean as "true" or "false", and a list of those as a repeated key.
// Anything else (null, an object, a list holding a list) is an error, so
// that enqueue can reject it. Empty or null args give empty values.
func EncodeArgs(args json.RawMessage) (url.Values, error) {
	if values, ok := encodeFlatArgs(args); ok {
		return values, nil
	}
	return encodeArgs(args)
}

// encodeArgs is EncodeArgs for any input, through encoding/json.
func encodeArgs(args json.RawMessage) (url.Values, error) {
	values := url.Values{}
	if len(bytes.TrimSpace(args)) == 0 {
		return values, nil
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(args, &fields); err != nil {
		return nil, errors.New("encode args: not a JSON object")
	}
	for key, raw := range fields {
		if raw = bytes.TrimSpace(raw); len(raw) > 0 && raw[0] == '[' {
			var list []json.RawMessage
			if err := json.Unmarshal(raw, &list); err != nil {
				return nil, fmt.Errorf("encode args: %q: %w", key, err)
			}
			vs := make([]string, 0, len(list))
			for _, item := range list {
				v, err := scalarArg(item)
				if err != nil {
					return nil, fmt.Errorf("encode args: %q: list item: %w", key, err)
				}
				vs = append(vs, v)
			}
			values[key] = vs
			continue
		}
		v, err := scalarArg(raw)
		if err != nil {
			return nil, fmt.Errorf("encode args: %q: %w", key, err)
		}
		values[key] = []string{v}
	}
	return values, nil
}

// scalarArg is the text of one argument value: a string, number or boolean.
func scalarArg(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "", errors.New("empty value")
	}
	switch c := raw[0]; {
	case c == '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", err
		}
		return s, nil
	case c == 't' || c == 'f':
		var b bool
		if err := json.Unmarshal(raw, &b); err != nil {
			return "", err
		}
		return fmt.Sprint(b), nil
	case c == '-' || ('0' <= c && c <= '9'):
		var n json.Number
		if err := json.Unmarshal(raw, &n); err != nil {
			return "", err
		}
		return n.String(), nil
	case c == 'n':
		return "", errors.New("null is not allowed")
	case c == '{':
		return "", errors.New("an object is not allowed")
	case c == '[':
		return "", errors.New("a list is not allowed here")
	}
	return "", errors.New("not a JSON value")
}

// encodeFlatArgs is the fast path of EncodeArgs. It exists because every
// dispatch encodes its task's args, and hookq stores them as a flat object
// of plain scalars, {"x":10,"y":10}, which encoding/json takes twenty
// allocations to read. It reports false, and leaves the input to
// encodeArgs, on anything else: a list, null, an object, an escape in a
// string, invalid JSON. What it accepts, it encodes as encodeArgs does.
func encodeFlatArgs(args []byte) (url.Values, bool) {
	// Keys and values are cut from one copy of the input.
	s := string(args)
	i := skipSpace(s, 0)
	if i == len(s) || s[i] != '{' {
		return nil, false
	}
	values := url.Values{}
	i = skipSpace(s, i+1)
	if i < len(s) && s[i] == '}' && skipSpace(s, i+1) == len(s) {
		return values, true
	}
	for {
		// "key":
		key, n := plainString(s[i:])
		if n == 0 {
			return nil, false
		}
		i = skipSpace(s, i+n)
		if i == len(s) || s[i] != ':' {
			return nil, false
		}
		i = skipSpace(s, i+1)

		// A value, then a comma or the end of the object. A duplicate key
		// overwrites, as it does in encoding/json.
		v, n := plainScalar(s[i:])
		if n == 0 {
			return nil, false
		}
		values[key] = []string{v}
		i = skipSpace(s, i+n)
		switch {
		case i < len(s) && s[i] == ',':
			i = skipSpace(s, i+1)
		case i < len(s) && s[i] == '}' && skipSpace(s, i+1) == len(s):
			return values, true
		default:
			return nil, false
		}
	}
}

// plainScalar reads the JSON string, number or boolean at the start of s
// and returns its argument text and its length in s. It returns a length of
// 0 for anything else, and for a string that plainString refuses.
func plainScalar(s string) (string, int) {
	switch {
	case s == "":
		return "", 0
	case s[0] == '"':
		return plainString(s)
	case strings.HasPrefix(s, "true"):
		return "true", 4
	case strings.HasPrefix(s, "false"):
		return "false", 5
	}
	n := numberLen(s)
	return s[:n], n
}

// plainString reads the JSON string at the start of s and returns its
// value and its length in s. It returns a length of 0 unless the string is
// plain: closed, free of escapes and control characters, and valid UTF-8,
// so that its value is exactly the text between the quotes.
func plainString(s string) (string, int) {
	if s == "" || s[0] != '"' {
		return "", 0
	}
	for i := 1; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"':
			if !utf8.ValidString(s[1:i]) {
				return "", 0
			}
			return s[1:i], i + 1
		case c == '\\' || c < ' ':
			return "", 0
		}
	}
	return "", 0
}

// numberLen returns the length of the JSON number at the start of s, or 0
// if there is none: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func numberLen(s string) int {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && '1' <= s[i] && s[i] <= '9':
		i = skipDigits(s, i)
	default:
		return 0
	}
	if i < len(s) && s[i] == '.' {
		j := skipDigits(s, i+1)
		if j == i+1 {
			return 0
		}
		i = j
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		j := skipDigits(s, i)
		if j == i {
			return 0
		}
		i = j
	}
	return i
}

// skipDigits returns the index of the first byte at or after i in s that is
// not an ASCII digit.
func skipDigits(s string, i int) int {
	for i < len(s) && '0' <= s[i] && s[i] <= '9' {
		i++
	}
	return i
}

// skipSpace returns the index of the first byte at or after i in s that is
// not JSON whitespace.
func skipSpace(s string, i int) int {
	for i < len(s) && isJSONSpace(s[i]) {
		i++
	}
	return i
}
