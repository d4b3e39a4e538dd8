package main

import (
	"testing"
	"time"
)

func TestDisplayURL(t *testing.T) {
	tests := []struct {
		in    string
		width int
		want  string
	}{
		{"http://h/p?q=1", 60, "http://h/p?q=1"},
		{"https://user:pass@h/p", 60, "https://xxxxx@h/p"},
		{"https://token@h/p", 60, "https://xxxxx@h/p"},
		{"http://h/abcdefghij", 12, "http://h/..."},
		{"http://h/éééééé", 13, "http://h/é..."},
		{"http://h/ééééé", 14, "http://h/ééééé"},
	}
	for _, tt := range tests {
		if got := displayURL(tt.in, tt.width); got != tt.want {
			t.Errorf("displayURL(%q, %d) = %q; want %q", tt.in, tt.width, got, tt.want)
		}
	}
}

func TestShortDuration(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want string
	}{
		{250 * time.Millisecond, "250ms"},
		{12 * time.Second, "12s"},
		{5*time.Minute + 59*time.Second, "5m"},
		{47 * time.Hour, "47h"},
		{72 * time.Hour, "3d"},
		{-3 * time.Second, "3s"},
	}
	for _, tt := range tests {
		if got := shortDuration(tt.in); got != tt.want {
			t.Errorf("shortDuration(%s) = %q; want %q", tt.in, got, tt.want)
		}
	}
}

func TestWhen(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	if got, want := when(now.Add(-90*time.Second), now), "2030-01-02T03:02:35Z (1m ago)"; got != want {
		t.Errorf("when(past) = %q; want %q", got, want)
	}
	if got, want := when(now.Add(2*time.Hour), now), "2030-01-02T05:04:05Z (in 2h)"; got != want {
		t.Errorf("when(future) = %q; want %q", got, want)
	}
}

func TestPrintable(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain text, é and 日本", "plain text, é and 日本"},
		{"a\nb\r\tc", `a\nb\r\tc`},
		{"\x1b[2J\x1b]0;title\x07", `\x1b[2J\x1b]0;title\a`},
		{"\x00\x7f", `\x00\x7f`},
		{"c1 \u0085 \u009b", `c1 \u0085 \u009b`},
		{"bad \xff\x9b byte", `bad \xff\x9b byte`},
		{`kept \n backslash`, `kept \n backslash`},
		{"\uFFFD stays", "\uFFFD stays"},
		{"rtl \u202eexe.txt", `rtl \u202eexe.txt`},
		{"\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u2066\u2067\u2068\u2069",
			`\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u2066\u2067\u2068\u2069`},
		{"\u200d and \u2070 stay", "\u200d and \u2070 stay"},
	}
	for _, tt := range tests {
		if got := printable(tt.in); got != tt.want {
			t.Errorf("printable(%q) = %q; want %q", tt.in, got, tt.want)
		}
	}
}

func TestHeaderValue(t *testing.T) {
	tests := []struct{ name, value, want string }{
		{"Authorization", "Bearer t", "xxxxx"},
		{"proxy-authorization", "Basic t", "xxxxx"},
		{"Set-Cookie", "s=1", "xxxxx"},
		{"X-Auth-Token", "t", "xxxxx"},
		{"X-Webhook-Secret", "s", "xxxxx"},
		{"X-Password", "p", "xxxxx"},
		{"X-API-Key", "k", "xxxxx"},
		{"Apikey", "k", "xxxxx"},
		{"X-Idempotency-Key", "k", "xxxxx"},
		{"X-Trace", "abc\x1b", `abc\x1b`},
	}
	for _, tt := range tests {
		if got := headerValue(tt.name, tt.value); got != tt.want {
			t.Errorf("headerValue(%q, %q) = %q; want %q", tt.name, tt.value, got, tt.want)
		}
	}
}
