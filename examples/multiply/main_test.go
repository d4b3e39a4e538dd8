package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestMultiplyHandler(t *testing.T) {
	srv := httptest.NewServer(multiplyHandler())
	t.Cleanup(srv.Close)

	tests := []struct {
		name, method, query, contentType, body string
		wantStatus                             int
		want                                   string
	}{
		{"GET", "GET", "?x=10&y=10", "", "", 200, `{"retval":100,"status":"success"}`},
		{"GETNegative", "GET", "?x=-3&y=7", "", "", 200, `{"retval":-21,"status":"success"}`},
		{"GETFloat", "GET", "?x=2.5&y=4", "", "", 200, `{"retval":10,"status":"success"}`},
		{"GETOverflowToFloat", "GET", "?x=9223372036854775807&y=2", "", "", 200,
			`{"retval":18446744073709552000,"status":"success"}`},
		{"POSTForm", "POST", "", "application/x-www-form-urlencoded", "x=6&y=7", 200,
			`{"retval":42,"status":"success"}`},
		{"POSTJSON", "POST", "", "application/json", `{"x":6,"y":"7"}`, 200,
			`{"retval":42,"status":"success"}`},
		{"Missing", "GET", "?x=1", "", "", 200, `{"reason":"missing argument y","status":"failure"}`},
		{"NotANumber", "GET", "?x=a&y=1", "", "", 200,
			`{"reason":"argument x is not a number: \"a\"","status":"failure"}`},
		{"NaN", "GET", "?x=NaN&y=1", "", "", 200,
			`{"reason":"argument x is not a number: \"NaN\"","status":"failure"}`},
		{"OutOfRange", "GET", "?x=1e308&y=1e308", "", "", 200,
			`{"reason":"the product is out of range","status":"failure"}`},
		{"BadJSON", "POST", "", "application/json", `[1]`, 200, `"status":"failure"`},
		{"JSONNotNumber", "POST", "", "application/json", `{"x":true,"y":1}`, 200,
			`{"reason":"argument x is not a number","status":"failure"}`},
		{"WrongMethod", "DELETE", "?x=1&y=1", "", "", 405, "method not allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, srv.URL+"/multiply"+tt.query, strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if tt.contentType != "" {
				req.Header.Set("Content-Type", tt.contentType)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.wantStatus || !strings.Contains(string(body), tt.want) {
				t.Errorf("%s %s = %d %s; want %d containing %s", tt.method, tt.query,
					resp.StatusCode, body, tt.wantStatus, tt.want)
			}
		})
	}
}
