package httpapi

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

const testToken = "s3cr3t-t0ken-for-tests_0123456789"

// authServer serves b's queue behind RequireToken; trustedToo marks every
// connection Trusted, as serve does for its unix socket.
func authServer(t *testing.T, b *bundle, trustedToo bool) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(RequireToken(NewHandler(b.q, nil), testToken, nil))
	if trustedToo {
		srv.Config.BaseContext = func(net.Listener) context.Context {
			return Trusted(context.Background())
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

// authCall makes one request and returns the reply with its body read.
func authCall(t *testing.T, method, url, auth, host, body string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if host != "" {
		req.Host = host
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp, string(data)
}

func TestRequireToken(t *testing.T) {
	b := setup(t)
	srv := authServer(t, b, false)
	task := `{"url":"http://127.0.0.1:1/","max_attempts":1,"run_at":"2199-01-01T00:00:00Z"}`

	for _, tc := range []struct {
		name, method, path, auth, host, body string
		want                                 int
		challenge                            string
	}{
		{"NoToken", "GET", "/v1/stats", "", "", "", 401, `Bearer realm="hookq"`},
		{"WrongToken", "GET", "/v1/stats", "Bearer " + testToken + "x", "", "", 401,
			`Bearer realm="hookq", error="invalid_token"`},
		{"PrefixOfToken", "GET", "/v1/stats", "Bearer " + testToken[:20], "", "", 401,
			`Bearer realm="hookq", error="invalid_token"`},
		{"BasicScheme", "GET", "/v1/stats", "Basic " + testToken, "", "", 401, `Bearer realm="hookq"`},
		{"EnqueueWithoutToken", "POST", "/v1/tasks", "", "", task, 401, `Bearer realm="hookq"`},
		{"RightToken", "GET", "/v1/stats", "Bearer " + testToken, "", "", 200, ""},
		{"SchemeInAnyCase", "GET", "/v1/stats", "bearer " + testToken, "", "", 200, ""},
		{"HealthNeedsNone", "GET", "/healthz", "", "", "", 200, ""},
		{"HealthElsewhereNeedsOne", "GET", "/healthz/", "", "", "", 401, `Bearer realm="hookq"`},
		// With the token, a host name is fine: no page can know it.
		{"TokenAllowsHostName", "GET", "/v1/stats", "Bearer " + testToken, "hookq.example:7700", "", 200, ""},
		{"HostNameWithoutToken", "GET", "/v1/stats", "", "hookq.example:7700", "", 401, `Bearer realm="hookq"`},
		{"HealthByHostName", "GET", "/healthz", "", "hookq.example:7700", "", 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := authCall(t, tc.method, srv.URL+tc.path, tc.auth, tc.host, tc.body)
			if resp.StatusCode != tc.want {
				t.Errorf("%s %s = %d %s; want %d", tc.method, tc.path, resp.StatusCode, body, tc.want)
			}
			if got := resp.Header.Get("WWW-Authenticate"); got != tc.challenge {
				t.Errorf("WWW-Authenticate = %q; want %q", got, tc.challenge)
			}
			if tc.want == 401 && !strings.Contains(body, `"code":"unauthorized"`) {
				t.Errorf("401 body = %s; want an error with code unauthorized", body)
			}
		})
	}
	if n := b.total(t); n != 0 {
		t.Errorf("tasks stored by requests without the token = %d; want 0", n)
	}

	t.Run("TrustedConnection", func(t *testing.T) {
		trusted := authServer(t, b, true)
		resp, body := authCall(t, "POST", trusted.URL+"/v1/tasks", "", "", task)
		if resp.StatusCode != http.StatusCreated {
			t.Errorf("enqueue on a trusted connection = %d %s; want 201", resp.StatusCode, body)
		}
	})
}

func TestParseToken(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"0123456789abcdef\n", "0123456789abcdef", true},
		{"  Zm9vYmFyYmF6cXV4cXV1eA==  ", "Zm9vYmFyYmF6cXV4cXV1eA==", true},
		{"a-b.c_d~e+f/g0123456", "a-b.c_d~e+f/g0123456", true},
		{"short", "", false},
		{"", "", false},
		{"0123456789 abcdef", "", false},
		{"0123456789abcdef\x00", "", false},
		{"0123456789abcdéf", "", false},
		{"================", "", false},
		{"0123456789=abcdef", "", false},
	} {
		got, err := ParseToken(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseToken(%q) = %q, %v; want %q, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}
