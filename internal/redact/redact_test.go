package redact

import (
	"strings"
	"testing"
)

func TestURL(t *testing.T) {
	tests := []struct{ raw, want string }{
		{"http://h/p?q=1", "http://h/p?q=1"},
		{"http://user:s3cret@h:8080/p", "http://xxxxx@h:8080/p"},
		{"https://t0k3n@h/", "https://xxxxx@h/"},
		// Unparsable: cut by hand.
		{"http://user:s3cret@127.0.0.1:18002/x%zz", "http://xxxxx@127.0.0.1:18002/x%zz"},
		{"http://us er:s3cret@h/", "http://xxxxx@h/"},
		{"ht tp://user:s3cret@h/", "ht tp://xxxxx@h/"},
		{"http://a@b:s3cret@h%zz", "http://xxxxx@h%zz"},
		// An @ past the authority is not userinfo.
		{"http://h/%zz@x", "http://h/%zz@x"},
		{"http://h?%zz@x", "http://h?%zz@x"},
		{"no scheme %zz", "no scheme %zz"},
	}
	for _, tt := range tests {
		if got := URL(tt.raw); got != tt.want {
			t.Errorf("URL(%q) = %q; want %q", tt.raw, got, tt.want)
		}
	}
}

func TestParseURL(t *testing.T) {
	tests := []struct{ raw, want string }{
		{"http://user:s3cret@127.0.0.1:18002/x%zz",
			`parse "http://xxxxx@127.0.0.1:18002/x%zz": invalid URL escape "%zz"`},
		{"http://user:s3%zzcret@h/", `parse "http://xxxxx@h/": its userinfo (user:password@) is not valid`},
		{"http://us er:s3cret@h/", `parse "http://xxxxx@h/": its userinfo (user:password@) is not valid`},
		{"http://user:s3cret@h:port/", `parse "http://xxxxx@h:port/": invalid port ":port" after host`},
		{"http://h/\x01", `parse "http://h/\x01": invalid control character in URL`},
	}
	for _, tt := range tests {
		_, err := ParseURL(tt.raw)
		if err == nil || err.Error() != tt.want {
			t.Errorf("ParseURL(%q) = %v; want %s", tt.raw, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), "s3") {
			t.Errorf("ParseURL(%q) shows the password: %v", tt.raw, err)
		}
	}
	if u, err := ParseURL("http://u:p@h/x"); err != nil || u.User.Username() != "u" {
		t.Errorf("ParseURL of a valid URL = %v, %v", u, err)
	}
}

func TestDisplay(t *testing.T) {
	tests := []struct{ raw, want string }{
		{"http://h/p?x=1&y=2", "http://h/p?x=1&y=2"},
		{"http://u:pw@h/p?api_key=QSECRET&x=1&token=T#frag",
			"http://xxxxx@h/p?api_key=xxxxx&x=1&token=xxxxx#frag"},
		{"http://h/p?Access%5FToken=T&flag", "http://h/p?Access%5FToken=xxxxx&flag"},
		{"http://h/p?", "http://h/p?"},
	}
	for _, tt := range tests {
		if got := Display(tt.raw); got != tt.want {
			t.Errorf("Display(%q) = %q; want %q", tt.raw, got, tt.want)
		}
	}
}

func TestArgs(t *testing.T) {
	got := string(Args([]byte(`{"password":"ARGSECRET","x":1,"y":[1,2]}`)))
	if want := `{"password":"xxxxx","x":1,"y":[1,2]}`; got != want {
		t.Errorf("Args = %s; want %s", got, want)
	}
	for _, raw := range []string{`{"x":1}`, `[1]`, `not json`} {
		if got := string(Args([]byte(raw))); got != raw {
			t.Errorf("Args(%s) = %s; want it unchanged", raw, got)
		}
	}
}
