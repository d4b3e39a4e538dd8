package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/hookq/hookq/internal/redact"
	"github.com/hookq/hookq/queue"
)

// Widths of truncated columns in human output.
const (
	urlWidth  = 60
	bodyWidth = 40
)

// printable returns s made safe to show on a terminal: control characters
// (C0 such as newline, carriage return and escape; DEL; C1), the bidi
// controls that reorder text (such as U+202E) and bytes that are not UTF-8
// are written as Go escapes without quotes, such as \n, \x1b, \u009b and
// \u202e. Text from endpoints and users thus cannot move the cursor,
// rewrite what was printed, disguise itself by reordering what follows or
// send commands to the terminal. Backslashes
// are kept as they are: the result is for reading, and --json output, which
// is never passed through printable, is the exact data.
func printable(s string) string {
	i := 0
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		if needsEscape(r, size) {
			break
		}
		i += size
	}
	if i == len(s) {
		return s
	}

	var b strings.Builder
	b.Grow(len(s) + 8)
	b.WriteString(s[:i])
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case needsEscape(r, size):
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// needsEscape reports whether the rune r, decoded from size bytes, is a
// control character, a bidi control or an invalid byte.
func needsEscape(r rune, size int) bool {
	return r < 0x20 || (r >= 0x7f && r <= 0x9f) || (r == utf8.RuneError && size == 1) ||
		isBidiControl(r)
}

// isBidiControl reports whether r is one of Unicode's bidirectional
// formatting characters: the Arabic letter mark, the left-to-right and
// right-to-left marks, and the embeddings, overrides and isolates, which
// can make a terminal show text in another order than it is (U+202E, the
// right-to-left override, turns "exe.txt" around).
func isBidiControl(r rune) bool {
	return r == 0x061c || r == 0x200e || r == 0x200f || (r >= 0x202a && r <= 0x202e) ||
		(r >= 0x2066 && r <= 0x2069)
}

// headerValue returns a request header's value for human output: "xxxxx"
// when the name suggests a credential (Authorization, X-Api-Key, ...), else
// the value made printable. JSON output keeps the value: it is the data.
func headerValue(name, value string) string {
	if redact.Sensitive(name) {
		return redact.Mask
	}
	return printable(value)
}

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
// password or a token) replaced by "xxxxx", made printable, then truncated
// to width runes.
func displayURL(raw string, width int) string {
	return truncate(printable(redact.Display(raw)), width)
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

// errorText returns a task or attempt error for display, made printable,
// or "-".
func errorText(e *queue.Error) string {
	if e == nil {
		return "-"
	}
	return printable(e.Error())
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

// byteSize returns n bytes in a short human form: 512 B, 1.5 KiB, 3.2 MiB.
func byteSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
