package dispatch

import (
	"reflect"
	"strings"
	"testing"
)

func TestEncodeArgs(t *testing.T) {
	tests := []struct {
		name    string
		args    string
		want    string // encoded, when no error
		wantErr string
	}{
		{name: "Numbers", args: `{"y": 10, "x": 10}`, want: "x=10&y=10"},
		{name: "NumberAsWritten", args: `{"f": 1.50, "e": -2e3}`, want: "e=-2e3&f=1.50"},
		{name: "String", args: `{"q": "a b&c=d"}`, want: "q=a+b%26c%3Dd"},
		{name: "Bools", args: `{"t": true, "f": false}`, want: "f=false&t=true"},
		{name: "List", args: `{"id": [3, "1", true]}`, want: "id=3&id=1&id=true"},
		{name: "URLAndMethodAreOrdinary", args: `{"url": "u", "method": "m"}`,
			want: "method=m&url=u"},
		{name: "Empty", args: ``, want: ""},
		{name: "Null", args: `null`, want: ""},
		{name: "EmptyObject", args: `{}`, want: ""},
		{name: "NullValue", args: `{"x": null}`, wantErr: "null"},
		{name: "ObjectValue", args: `{"x": {"a": 1}}`, wantErr: "object"},
		{name: "NestedList", args: `{"x": [[1]]}`, wantErr: "list"},
		{name: "NullInList", args: `{"x": [null]}`, wantErr: "null"},
		{name: "NotObject", args: `[1, 2]`, wantErr: "not a JSON object"},
		{name: "Invalid", args: `{"x": `, wantErr: "not a JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := EncodeArgs([]byte(tt.args))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("EncodeArgs err = %v; want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("EncodeArgs: %v", err)
			}
			if enc := got.Encode(); enc != tt.want {
				t.Errorf("EncodeArgs = %q; want %q", enc, tt.want)
			}
		})
	}
}

// argsSeeds are inputs every fuzz run of EncodeArgs starts from: the
// canonical shape, and the edges of the fast path.
var argsSeeds = []string{
	`{"x":10,"y":10}`, `{}`, ` { } `, ``, `null`, `[]`, `"x"`, `{`, `{"x":10`,
	`{"x":10,}`, `{"x":10}x`, `{"x" : -0.5e+3 , "y":"a b"}`, "{\"x\":\t1\r\n}",
	`{"x":01}`, `{"x":1.}`, `{"x":.5}`, `{"x":1e}`, `{"x":-}`, `{"x":truex}`,
	`{"x":true,"y":false}`, `{"x":nul}`, `{"x":null}`, `{"x":{}}`, `{"x":[]}`,
	`{"x":[1,"a",true]}`, `{"x":[[1]]}`, `{"x":1,"x":2}`, `{"x":null,"x":2}`,
	`{"x":"\u00e9"}`, `{"\u0078":1}`, `{"é":"ü"}`, "{\"x\":\"\xff\"}",
	"{\"\xff\":1}", "{\"x\":\"a\tb\"}", "{\"x\":1}\u00a0", "\xef\xbb\xbf{}",
}

func FuzzEncodeArgs(f *testing.F) {
	for _, s := range argsSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, args string) {
		// The fast path, when it answers, must agree with the general path.
		fast, ok := encodeFlatArgs([]byte(args))
		want, wantErr := encodeArgs([]byte(args))
		if ok && (wantErr != nil || !reflect.DeepEqual(fast, want)) {
			t.Fatalf("fast path = %q; general path = %q, %v", fast, want, wantErr)
		}

		// And so must EncodeArgs, which takes either.
		got, err := EncodeArgs([]byte(args))
		if (err == nil) != (wantErr == nil) || !reflect.DeepEqual(got, want) {
			t.Fatalf("EncodeArgs = %q, %v; general path = %q, %v", got, err, want, wantErr)
		}
	})
}

func BenchmarkEncodeArgs(b *testing.B) {
	args := map[string][]byte{
		// The shape hookq itself stores: compact, keys sorted.
		"Canonical": []byte(`{"x":10,"y":10}`),
		"Mixed":     []byte(`{"id":[3,"1",true],"name":"a b","ratio":1.5}`),
		"Spaced":    []byte(`{ "y": 10, "x": 10 }`),
	}
	for name, arg := range args {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := EncodeArgs(arg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
