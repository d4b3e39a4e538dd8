package dispatch

import (
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
