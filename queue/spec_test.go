package queue

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"testing"

	"github.com/hookq/hookq/dispatch"
)

func TestEncodeArgs_Rejects(t *testing.T) {
	for name, v := range map[string]any{
		"NaNNumber": json.Number("NaN"), "HexNumber": json.Number("0x10"),
		"NaN": math.NaN(), "Map": map[string]any{}, "Null": nil, "Nested": []any{[]any{}},
		"Struct": struct{}{},
	} {
		t.Run(name, func(t *testing.T) {
			if got, err := encodeArgs(map[string]any{"k": v}); err == nil {
				t.Errorf("encodeArgs accepted %v as %s", v, got)
			}
		})
	}
}

func TestEncodeArgs(t *testing.T) {
	tests := []struct {
		name string
		in   map[string]any
		want string
	}{
		{"Empty", nil, `{}`},
		{"SortedKeys", map[string]any{"y": 10, "x": "a"}, `{"x":"a","y":10}`},
		{"Kinds", map[string]any{"b": true, "f": 1.5, "n": json.Number("7")}, `{"b":true,"f":1.5,"n":7}`},
		{"List", map[string]any{"l": []any{"a", 1, false}}, `{"l":["a",1,false]}`},
		{"StringList", map[string]any{"l": []string{"a", "b"}}, `{"l":["a","b"]}`},
		{"Escapes", map[string]any{"q": "a\"b<c>\n", "é": "ü"}, `{"q":"a\"b\u003cc\u003e\n","é":"ü"}`},
		{"Ints", map[string]any{"a": int8(-3), "b": uint64(7), "c": int64(-9)}, `{"a":-3,"b":7,"c":-9}`},
		{"NamesUrlAndMethod", map[string]any{"url": "u", "method": "m"}, `{"method":"m","url":"u"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := encodeArgs(tt.in)
			if err != nil || string(got) != tt.want {
				t.Errorf("encodeArgs = %s, %v; want %s", got, err, tt.want)
			}
		})
	}
}

// FuzzArgs checks that whatever enqueue accepts as arguments, dispatch can
// send: a JSON object is decoded as the HTTP API decodes it, and if the
// queue's validation accepts it, the stored form must encode for the wire
// with the same keys.
func FuzzArgs(f *testing.F) {
	for _, seed := range []string{
		`{}`, `{"x":10,"y":10}`, `{"a":["1",2,true]}`, `{"s":"caf\u00e9 & co=1"}`,
		`{"n":-1.5e3}`, `{"x":null}`, `{"x":{"a":1}}`, `{"x":[[1]]}`, `{"":1}`,
		`{"x":[]}`, `{"big":12345678901234567890123}`, `[1]`, `{"k":"\ud800"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		dec := json.NewDecoder(bytes.NewReader(in))
		dec.UseNumber()
		var args map[string]any
		if err := dec.Decode(&args); err != nil {
			return
		}
		stored, err := encodeArgs(args)
		if err != nil {
			return // rejected at enqueue: fine, as long as it says so
		}
		if want, err := json.Marshal(args); err != nil || !bytes.Equal(stored, want) {
			t.Fatalf("stored args %s; encoding/json writes %s (%v)", stored, want, err)
		}
		values, err := dispatch.EncodeArgs(stored)
		if err != nil {
			t.Fatalf("accepted %s but dispatch cannot send it: %v", stored, err)
		}
		for k, v := range args {
			if l, ok := v.([]any); ok && len(l) == 0 {
				continue // an empty list sends nothing
			}
			if _, ok := values[k]; !ok {
				t.Errorf("key %q lost between enqueue and dispatch", k)
			}
		}
	})
}

// TestKnownURLs: the URLs remembered across enqueues are only valid ones,
// an invalid URL is refused however often a valid one came before it, and
// the memory stays bounded.
func TestKnownURLs(t *testing.T) {
	t.Parallel()
	var known knownURLs
	c := urlCheck{known: &known}
	if err := c.check("http://127.0.0.1:9/a"); err != nil {
		t.Fatal(err)
	}
	if !known.has("http://127.0.0.1:9/a") {
		t.Error("a valid URL was not remembered")
	}
	for _, bad := range []string{"http://127.0.0.1:0/a", "ftp://127.0.0.1/a", "http:// /a", ""} {
		for range 2 {
			if err := (&urlCheck{known: &known}).check(bad); err == nil {
				t.Errorf("check(%q) = nil; want an error", bad)
			}
		}
		if known.has(bad) {
			t.Errorf("invalid URL %q remembered", bad)
		}
	}
	for i := range 3 * maxKnownURLs {
		if err := (&urlCheck{known: &known}).check(fmt.Sprintf("http://127.0.0.1:9/%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	known.m.Range(func(any, any) bool { n++; return true })
	if n > maxKnownURLs {
		t.Errorf("%d URLs remembered; want at most %d", n, maxKnownURLs)
	}
}
