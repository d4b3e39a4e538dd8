// Command multiply is an example endpoint for hookq: the multiply task of
// Celery's HTTP callback tasks as a small standalone server.
//
//	GET  /multiply?x=10&y=10
//	POST /multiply           (form body x=10&y=10, or JSON {"x":10,"y":10})
//
// answer {"status":"success","retval":100}. Missing or bad arguments answer
// {"status":"failure","reason":"..."} with status 200: under the Celery
// protocol the endpoint decides, and hookq fails the task without retrying.
//
// Run it and enqueue a call:
//
//	go run ./examples/multiply &
//	hookq add --wait http://127.0.0.1:8000/multiply x=10 y=10
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"mime"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// maxBody bounds a request body.
const maxBody = 64 << 10

func main() {
	listen := flag.String("listen", "127.0.0.1:8000", "address to listen on")
	flag.Parse()

	mux := http.NewServeMux()
	mux.Handle("/multiply", multiplyHandler())
	srv := &http.Server{
		Addr:              *listen,
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       time.Minute,
	}
	slog.Info("multiply listening", slog.String("listen", *listen))
	if err := srv.ListenAndServe(); err != nil {
		fmt.Fprintf(os.Stderr, "multiply: %v\n", err)
		os.Exit(1)
	}
}

// multiplyHandler returns the handler of /multiply.
func multiplyHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodPost {
			w.Header().Set("Allow", "GET, POST")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		xs, ys, err := operands(r)
		if err != nil {
			reply(w, map[string]any{"status": "failure", "reason": err.Error()})
			return
		}
		x, errX := parseNumber("x", xs)
		y, errY := parseNumber("y", ys)
		if err := errors.Join(errX, errY); err != nil {
			reply(w, map[string]any{"status": "failure", "reason": err.Error()})
			return
		}
		p, err := multiply(x, y)
		if err != nil {
			reply(w, map[string]any{"status": "failure", "reason": err.Error()})
			return
		}
		reply(w, map[string]any{"status": "success", "retval": p})
	})
}

// operands reads x and y from the query, a form body or a JSON body.
func operands(r *http.Request) (x, y string, err error) {
	r.Body = http.MaxBytesReader(nil, r.Body, maxBody)
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if r.Method == http.MethodPost && ct == "application/json" {
		var body map[string]any
		dec := json.NewDecoder(r.Body)
		dec.UseNumber()
		if err := dec.Decode(&body); err != nil {
			return "", "", fmt.Errorf("body is not a JSON object: %v", err)
		}
		if x, err = jsonOperand(body, "x"); err != nil {
			return "", "", err
		}
		y, err = jsonOperand(body, "y")
		return x, y, err
	}
	if err := r.ParseForm(); err != nil {
		return "", "", fmt.Errorf("bad form: %v", err)
	}
	for _, name := range []string{"x", "y"} {
		if !r.Form.Has(name) {
			return "", "", fmt.Errorf("missing argument %s", name)
		}
	}
	return r.Form.Get("x"), r.Form.Get("y"), nil
}

// jsonOperand returns a JSON body's number (or numeric string) as text.
func jsonOperand(body map[string]any, name string) (string, error) {
	switch v := body[name].(type) {
	case nil:
		return "", fmt.Errorf("missing argument %s", name)
	case json.Number:
		return string(v), nil
	case string:
		return v, nil
	default:
		return "", fmt.Errorf("argument %s is not a number", name)
	}
}

// number is an operand: an integer when it was written as one.
type number struct {
	i     int64
	f     float64
	isInt bool
}

// parseNumber parses the operand called name.
func parseNumber(name, s string) (number, error) {
	s = strings.TrimSpace(s)
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		return number{i: i, f: float64(i), isInt: true}, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return number{}, fmt.Errorf("argument %s is not a number: %q", name, s)
	}
	return number{f: f}, nil
}

// multiply returns x*y: exact when both are integers and the product fits
// in 64 bits, else a float.
func multiply(x, y number) (any, error) {
	if x.isInt && y.isInt {
		if p, ok := mulInt(x.i, y.i); ok {
			return p, nil
		}
	}
	p := x.f * y.f
	if math.IsInf(p, 0) {
		return nil, errors.New("the product is out of range")
	}
	return p, nil
}

// mulInt returns a*b and whether it did not overflow.
func mulInt(a, b int64) (int64, bool) {
	if a == 0 || b == 0 {
		return 0, true
	}
	p := a * b
	if p/b != a || (a == -1 && b == math.MinInt64) || (b == -1 && a == math.MinInt64) {
		return 0, false
	}
	return p, true
}

func reply(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}
