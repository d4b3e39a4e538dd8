package main

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/hookq/hookq/cmd/hookq/internal/httpapi"
	"github.com/hookq/hookq/internal/redact"
)

// routes returns the Celery gateway's routes from --routes and --route,
// checked. A name given twice is an error, whichever gives it.
func (f *serveFlags) routes() (map[string]httpapi.Route, error) {
	out := make(map[string]httpapi.Route)
	add := func(where, name string, r httpapi.Route) error {
		if _, dup := out[name]; dup {
			return usagef("%s: route %q is defined twice", where, name)
		}
		r, err := httpapi.CheckRoute(name, r)
		if err != nil {
			return usagef("%s: %v", where, err)
		}
		out[name] = r
		return nil
	}

	if f.routesFile != "" {
		file, err := os.Open(f.routesFile)
		if err != nil {
			return nil, usagef("--routes: %v", err)
		}
		defer file.Close()
		data, err := readBounded(file)
		if err != nil {
			return nil, usagef("--routes %s: %v", f.routesFile, err)
		}
		fromFile, err := parseRoutes(data)
		if err != nil {
			return nil, usagef("--routes %s: %v", f.routesFile, err)
		}
		for name, r := range fromFile {
			if err := add("--routes "+f.routesFile, name, r); err != nil {
				return nil, err
			}
		}
	}
	for _, s := range f.route {
		name, r, err := parseRouteFlag(s)
		if err != nil {
			// The value may hold a URL's password: show it hidden.
			return nil, usagef("--route %q: %v", redact.URL(s), err)
		}
		if err := add("--route "+name, name, r); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// parseRoutes reads a routes file: a JSON object of routes by name, such
// as {"multiply": {"url": "http://127.0.0.1:8000/multiply", "method": "GET"}}.
func parseRoutes(data []byte) (map[string]httpapi.Route, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	shape := func(err error) error {
		return fmt.Errorf(`want a JSON object such as {"name": {"url": "http://...", `+
			`"method": "GET"}}: %w`, err)
	}
	// Read the object member by member: a map would keep the last of two
	// routes of the same name without a word.
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, shape(cmp.Or(err, errors.New("not an object")))
	}
	routes := make(map[string]httpapi.Route)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, shape(err)
		}
		name := tok.(string) // object keys are strings
		var r httpapi.Route
		if err := dec.Decode(&r); err != nil {
			return nil, shape(fmt.Errorf("route %s: %w", name, err))
		}
		if _, dup := routes[name]; dup {
			return nil, fmt.Errorf("route %s is defined twice", name)
		}
		routes[name] = r
	}
	if _, err := dec.Token(); err != nil {
		return nil, shape(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("data after the JSON object")
	}
	return routes, nil
}

// parseRouteFlag parses a --route value: name=METHOD:URL, or name=URL for
// a GET.
func parseRouteFlag(s string) (string, httpapi.Route, error) {
	name, target, ok := strings.Cut(s, "=")
	if !ok || name == "" || target == "" {
		return "", httpapi.Route{}, errors.New(
			"want name=METHOD:URL, such as multiply=GET:http://127.0.0.1:8000/multiply")
	}
	r := httpapi.Route{URL: target}
	if method, rest, ok := strings.Cut(target, ":"); ok && isMethod(method) {
		r = httpapi.Route{URL: rest, Method: method}
	}
	return name, r, nil
}

// isMethod reports whether s is an HTTP method a task may use, in any
// case. No URL scheme is one.
func isMethod(s string) bool {
	switch strings.ToUpper(s) {
	case "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS":
		return true
	}
	return false
}
