package dispatch

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
)

// EncodeArgs turns a task's JSON arguments, an object, into the values Do
// sends. A string is sent as it is, a number as written in the JSON, a
// boolean as "true" or "false", and a list of those as a repeated key.
// Anything else (null, an object, a list holding a list) is an error, so
// that enqueue can reject it. Empty or null args give empty values.
func EncodeArgs(args json.RawMessage) (url.Values, error) {
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
