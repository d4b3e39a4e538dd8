package main

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestParseArgs(t *testing.T) {
	tests := []struct {
		name    string
		in      []string
		want    string
		wantErr bool
	}{
		{"None", nil, `null`, false},
		{"Numbers", []string{"x=10", "y=-2.5e3"}, `{"x":10,"y":-2.5e3}`, false},
		{"NotNumbers", []string{"a=007", "b=1.", "c=0x10", "d=true"},
			`{"a":"007","b":"1.","c":"0x10","d":"true"}`, false},
		{"EmptyValue", []string{"a="}, `{"a":""}`, false},
		{"EqualsInValue", []string{"q=a=b"}, `{"q":"a=b"}`, false},
		{"Repeated", []string{"t=a", "t=2", "t=c"}, `{"t":["a",2,"c"]}`, false},
		{"URLAndMethodAreArgs", []string{"url=x", "method=y"}, `{"method":"y","url":"x"}`, false},
		{"NoEquals", []string{"x"}, ``, true},
		{"NoKey", []string{"=1"}, ``, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseArgs(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseArgs(%q) error = %v; want error %t", tt.in, err, tt.wantErr)
			}
			if err != nil {
				if !isUsage(err) {
					t.Errorf("error %v is not a usage error", err)
				}
				return
			}
			b, _ := json.Marshal(got)
			if string(b) != tt.want {
				t.Errorf("parseArgs(%q) = %s; want %s", tt.in, b, tt.want)
			}
		})
	}
}

func TestParseHeaders(t *testing.T) {
	got, err := parseHeaders([]string{"X-A: 1", "X-B:two: three ", "X-C:  4"})
	if err != nil {
		t.Fatalf("parseHeaders: %v", err)
	}
	b, _ := json.Marshal(got)
	if want := `{"X-A":"1","X-B":"two: three","X-C":"4"}`; string(b) != want {
		t.Errorf("parseHeaders = %s; want %s", b, want)
	}
	for _, bad := range [][]string{{"nocolon"}, {": value"}, {"X-A: 1", "x-a: 2"}} {
		if _, err := parseHeaders(bad); err == nil || !isUsage(err) {
			t.Errorf("parseHeaders(%q) = %v; want a usage error", bad, err)
		}
	}
}

func TestReadJSON(t *testing.T) {
	stdin := strings.NewReader(`{"from":"stdin"}`)
	tests := []struct {
		arg, want string
		wantErr   bool
	}{
		{`{"a":1}`, `{"a":1}`, false},
		{`-`, `{"from":"stdin"}`, false},
		{`@/does/not/exist.json`, ``, true},
		{`{"a":`, ``, true},
	}
	for _, tt := range tests {
		got, err := readJSON(tt.arg, stdin)
		if (err != nil) != tt.wantErr || string(got) != tt.want {
			t.Errorf("readJSON(%q) = %s, %v; want %s (error %t)", tt.arg, got, err, tt.want, tt.wantErr)
		}
	}
}
