package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/hookq/hookq/queue"
)

// Widths of truncated columns in human output.
const (
	urlWidth  = 60
	bodyWidth = 40
)

// newTable returns a tabwriter for aligned columns; flush it when done.
func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
}

// writeJSON prints v as indented JSON.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// displayURL returns a URL for display: userinfo (which may hold a
// password or a token) replaced by "xxxxx", then truncated to width runes.
func displayURL(raw string, width int) string {
	if u, err := url.Parse(raw); err == nil && u.User != nil {
		u.User = url.User("xxxxx")
		raw = u.String()
	}
	return truncate(raw, width)
}

// truncate shortens s to at most width runes, marking a cut with "...".
func truncate(s string, width int) string {
	if utf8.RuneCountInString(s) <= width {
		return s
	}
	r := []rune(s)
	return string(r[:width-3]) + "..."
}

// compactJSON returns raw JSON on one line; null when empty.
func compactJSON(raw json.RawMessage) string {
	if len(raw) == 0 {
		return "null"
	}
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return string(raw)
	}
	return b.String()
}

// age returns how long ago t was, in a short human form such as "3m".
func age(t, now time.Time) string {
	return shortDuration(now.Sub(t))
}

// shortDuration returns d rounded to its largest unit: 12s, 5m, 3h, 4d.
func shortDuration(d time.Duration) string {
	if d < 0 {
		d = -d
	}
	switch {
	case d < time.Second:
		return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
	case d < time.Minute:
		return strconv.Itoa(int(d/time.Second)) + "s"
	case d < time.Hour:
		return strconv.Itoa(int(d/time.Minute)) + "m"
	case d < 48*time.Hour:
		return strconv.Itoa(int(d/time.Hour)) + "h"
	default:
		return strconv.Itoa(int(d/(24*time.Hour))) + "d"
	}
}

// when returns t in RFC 3339 (UTC) with its distance from now.
func when(t, now time.Time) string {
	rel := shortDuration(now.Sub(t)) + " ago"
	if t.After(now) {
		rel = "in " + shortDuration(t.Sub(now))
	}
	return fmt.Sprintf("%s (%s)", t.UTC().Format(time.RFC3339), rel)
}

// errorText returns a task or attempt error for display, or "-".
func errorText(e *queue.Error) string {
	if e == nil {
		return "-"
	}
	return e.Error()
}

// dash returns s, or "-" when s is empty.
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// plural returns "1 attempt", "2 attempts" and so on.
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}
