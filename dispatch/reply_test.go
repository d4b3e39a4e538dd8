package dispatch

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParseReply(t *testing.T) {
	tests := []struct {
		name    string
		proto   Protocol
		body    string
		verdict Verdict
		result  string // when Succeeded
		kind    string // when Failed
		message string // a part of the message, when Failed
	}{
		{name: "SuccessNumber", body: `{"status":"success","retval":100}`,
			verdict: Succeeded, result: `100`},
		{name: "SuccessNull", body: `{"status":"success","retval":null}`,
			verdict: Succeeded, result: `null`},
		{name: "SuccessObjectCompacted", body: "{\"status\": \"success\",\n \"retval\": {\"a\": [1, 2]}}",
			verdict: Succeeded, result: `{"a":[1,2]}`},
		{name: "SuccessExtraKeys", body: `{"retval":"x","status":"success","took":3}`,
			verdict: Succeeded, result: `"x"`},
		{name: "SuccessNumberAsWritten", body: `{"status":"success","retval":1.50e10}`,
			verdict: Succeeded, result: `1.50e10`},
		{name: "SuccessExplicitCelery", proto: Celery, body: `{"status":"success","retval":true}`,
			verdict: Succeeded, result: `true`},
		{name: "FailureString", body: `{"status":"failure","reason":"out of stock"}`,
			verdict: Failed, kind: KindRemote, message: "out of stock"},
		{name: "FailureObjectReason", body: `{"status":"failure","reason":{"code": 7}}`,
			verdict: Failed, kind: KindRemote, message: `{"code":7}`},
		{name: "FailureNoReason", body: `{"status":"failure"}`,
			verdict: Failed, kind: KindRemote, message: "no reason"},
		{name: "EmptyBody", body: ``,
			verdict: Failed, kind: KindInvalidResponse, message: "empty body"},
		{name: "BlankBody", body: " \n\t",
			verdict: Failed, kind: KindInvalidResponse, message: "empty body"},
		{name: "InvalidJSON", body: `{"status":"success",`,
			verdict: Failed, kind: KindInvalidResponse, message: "not valid JSON"},
		{name: "HTML", body: `<html>oops</html>`,
			verdict: Failed, kind: KindInvalidResponse, message: "not valid JSON"},
		{name: "Array", body: `[{"status":"success","retval":1}]`,
			verdict: Failed, kind: KindInvalidResponse, message: "not a JSON object"},
		{name: "String", body: `"success"`,
			verdict: Failed, kind: KindInvalidResponse, message: "not a JSON object"},
		{name: "Null", body: `null`,
			verdict: Failed, kind: KindInvalidResponse, message: "not a JSON object"},
		{name: "MissingStatus", body: `{"retval":1}`,
			verdict: Failed, kind: KindInvalidResponse, message: `no "status"`},
		{name: "StatusNotString", body: `{"status":1,"retval":1}`,
			verdict: Failed, kind: KindInvalidResponse, message: "not a string"},
		{name: "StatusNull", body: `{"status":null,"retval":1}`,
			verdict: Failed, kind: KindInvalidResponse, message: "not a string"},
		{name: "UnknownStatus", body: `{"status":"ok","retval":1}`,
			verdict: Failed, kind: KindInvalidResponse, message: `unknown status "ok"`},
		{name: "StatusCaseSensitive", body: `{"status":"SUCCESS","retval":1}`,
			verdict: Failed, kind: KindInvalidResponse, message: `unknown status "SUCCESS"`},
		{name: "KeyCaseSensitive", body: `{"Status":"success","retval":1}`,
			verdict: Failed, kind: KindInvalidResponse, message: `no "status"`},
		{name: "SuccessWithoutRetval", body: `{"status":"success"}`,
			verdict: Failed, kind: KindInvalidResponse, message: `without "retval"`},
		{name: "PlainJSON", proto: Plain, body: ` {"a": 1} `,
			verdict: Succeeded, result: `{"a":1}`},
		{name: "PlainCeleryShapeIsJustJSON", proto: Plain, body: `{"status":"failure"}`,
			verdict: Succeeded, result: `{"status":"failure"}`},
		{name: "PlainText", proto: Plain, body: "hello\n",
			verdict: Succeeded, result: `"hello\n"`},
		{name: "PlainEmpty", proto: Plain, body: ``,
			verdict: Succeeded, result: `""`},
		{name: "PlainInvalidUTF8", proto: Plain, body: "\"a\xffb\"",
			verdict: Succeeded, result: `"a` + "\uFFFD" + `b"`},
		{name: "UnknownProtocol", proto: "soap", body: `{}`,
			verdict: Failed, kind: KindInvalidResponse, message: "unknown protocol"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ParseReply(tt.proto, []byte(tt.body))
			wantOutcome(t, got, tt.verdict, tt.kind)
			if tt.verdict == Succeeded && string(got.Result) != tt.result {
				t.Errorf("Result = %s; want %s", got.Result, tt.result)
			}
			if tt.message != "" {
				wantMessage(t, got, tt.message)
			}
		})
	}
}

func TestParseReply_LongReasonIsClipped(t *testing.T) {
	reason := strings.Repeat("é", 4000)
	body, _ := json.Marshal(map[string]string{"status": "failure", "reason": reason})
	got := ParseReply(Celery, body)
	if n := len(got.Err.Message); n > maxMessageBytes+len("…") {
		t.Errorf("message is %d bytes; want at most %d", n, maxMessageBytes+len("…"))
	}
	if !utf8.ValidString(got.Err.Message) {
		t.Errorf("message is not valid UTF-8")
	}
}

func TestParseReply_ResultIsACopy(t *testing.T) {
	body := []byte(`{"status":"success","retval":[1,2,3]}`)
	got := ParseReply(Celery, body)
	copy(body, bytes.Repeat([]byte("x"), len(body)))
	if string(got.Result) != `[1,2,3]` {
		t.Errorf("Result = %s after the body changed; want [1,2,3]", got.Result)
	}
}

// replySeeds are bodies every fuzz run starts from.
var replySeeds = []string{
	`{"status":"success","retval":100}`,
	`{"status":"success","retval":null}`,
	`{"status":"failure","reason":"no"}`,
	`{"status":"failure","reason":[1,{"a":"\u00e9"}]}`,
	`{"status":"success"}`,
	`{"status":7}`,
	`{"status":"success","retval":"\xff\xfe"}`,
	`{"status":"success","status":"failure","retval":1}`,
	`[]`, `null`, ``, ` `, `{`, `"x"`, `1e999`, "\xef\xbb\xbf{}",

	// Edges of the fast path.
	`{"status": "success", "retval": 100}`, `{"status":"success","retval": 1 }`,
	"{\"status\":\"success\",\"retval\":1}\n", `{"status":"success","retval":}`,
	`{"status":"success","retval":"x"}}`,
	`{"status":"success","retval":1,"status":"failure"}`,
	`{"status":"success","retval":{"a":"\xff"}}`,
	"{\"status\":\"success\",\"retval\":1}\u00a0",
	"{\"status\":\"success\",\"retval\":1\u00a0}", `{"status":"failure","reason":null}`,
	`{"status":"failure","reason": null }`, `{"status":"failure","reason":"a\"b"}`,
	`{"status":"failure","reason":"x","retval":1}`, `{"status":"failure","reason":"\xff"}`,
	`{"retval":100,"status":"success"}`, `{"st\u0061tus":"success","retval":1}`,
}

func FuzzParseReply(f *testing.F) {
	for _, s := range replySeeds {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, body string, plain bool) {
		proto := Celery
		if plain {
			proto = Plain
		}
		got := ParseReply(proto, []byte(body))

		// Whichever path read it, a Celery reply must be read as the
		// reference decode, through a map of its keys, reads it.
		if !plain {
			if want := parseCeleryFields([]byte(body)); !reflect.DeepEqual(got, want) {
				t.Fatalf("ParseReply = %+v, %v; reference = %+v, %v", got, got.Err, want, want.Err)
			}
		}

		switch got.Verdict {
		case Succeeded:
			if got.Err != nil {
				t.Fatalf("succeeded with Err %v", got.Err)
			}
			if !json.Valid(got.Result) || !utf8.Valid(got.Result) {
				t.Fatalf("Result %q is not valid JSON in UTF-8", got.Result)
			}
			var buf bytes.Buffer
			if json.Compact(&buf, got.Result); buf.String() != string(got.Result) {
				t.Fatalf("Result %q is not compact", got.Result)
			}
		case Failed:
			if plain {
				t.Fatalf("plain protocol failed: %v", got.Err)
			}
			if got.Err == nil || got.Result != nil {
				t.Fatalf("failed with Err %v, Result %q", got.Err, got.Result)
			}
			if got.Err.Kind != KindRemote && got.Err.Kind != KindInvalidResponse {
				t.Fatalf("Err kind %q", got.Err.Kind)
			}
			if !utf8.ValidString(got.Err.Message) || len(got.Err.Message) > 2*maxMessageBytes {
				t.Fatalf("message %q is not valid UTF-8 or too long", got.Err.Message)
			}
		default:
			t.Fatalf("Verdict %v", got.Verdict)
		}
		if got.StatusCode != 0 || got.Body != nil || got.RetryAfter != 0 {
			t.Fatalf("ParseReply set transport fields: %+v", got)
		}
	})
}

func BenchmarkParseReply(b *testing.B) {
	bodies := map[string][]byte{
		"Number":  []byte(`{"status":"success","retval":100}`),
		"Success": []byte(`{"status":"success","retval":{"id":12345,"items":["a","b","c"],"ok":true}}`),
		"Failure": []byte(`{"status":"failure","reason":"insufficient funds"}`),
		"Invalid": []byte(`<html><body>502 Bad Gateway</body></html>`),
	}
	for name, body := range bodies {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				ParseReply(Celery, body)
			}
		})
	}
}
