package httpapi

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHandler_Metrics(t *testing.T) {
	b := setup(t)
	metrics := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hookq_up 1\n")
	})
	srv := httptest.NewServer(NewHandler(b.q, nil, WithMetrics(metrics)))
	defer srv.Close()
	get := func(method, path string) (int, http.Header, string) {
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(data)
	}
	if status, _, data := get("GET", "/metrics"); status != 200 || data != "hookq_up 1\n" {
		t.Errorf("GET /metrics = %d %q", status, data)
	}
	status, header, data := get("POST", "/metrics")
	if status != http.StatusMethodNotAllowed || !strings.Contains(header.Get("Allow"), "GET") {
		t.Errorf("POST /metrics = %d %s, Allow %q; want 405 allowing GET", status, data, header.Get("Allow"))
	}
	if status, _, _ := get("GET", "/metricsx"); status != 404 {
		t.Errorf("GET /metricsx = %d; want 404", status)
	}

	// Without the option, there is no such route.
	plain := httptest.NewServer(NewHandler(b.q, nil))
	defer plain.Close()
	resp, err := http.Get(plain.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /metrics without WithMetrics = %d; want 404", resp.StatusCode)
	}
}
