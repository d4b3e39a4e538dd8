package dispatch

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"testing"
)

// Addresses in these tests are only ever given to Guard.Check, or reached
// through a fake resolver and refused before any dial: no packet goes to
// them. Public examples come from the documentation ranges.
func TestGuard_Check(t *testing.T) {
	var (
		zero        = Guard{}
		deny        = Guard{DenyPrivate: true}
		metadata    = Guard{AllowMetadata: true}
		denyAllow10 = Guard{DenyPrivate: true, Allow: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
		allowMeta   = Guard{Allow: []netip.Prefix{netip.MustParsePrefix("169.254.169.254/32")}}
	)
	tests := []struct {
		name  string
		guard Guard
		addr  string
		ok    bool
	}{
		{"DefaultAllowsPublic", zero, "192.0.2.1", true},
		{"DefaultAllowsPublicIPv6", zero, "2001:db8::1", true},
		{"DefaultAllowsLoopback", zero, "127.0.0.1", true},
		{"DefaultAllowsPrivate", zero, "10.1.2.3", true},
		{"DefaultRefusesMetadata", zero, "169.254.169.254", false},
		{"DefaultRefusesLinkLocal", zero, "169.254.10.1", false},
		{"DefaultRefusesLinkLocalIPv6", zero, "fe80::1", false},
		{"DefaultRefusesZonedLinkLocal", zero, "fe80::1%eth0", false},
		{"DefaultRefusesAWSIPv6Metadata", zero, "fd00:ec2::254", false},
		{"DefaultRefusesAlibabaMetadata", zero, "100.100.100.200", false},
		{"DefaultRefusesMappedMetadata", zero, "::ffff:169.254.169.254", false},
		{"DefaultRefusesNAT64Metadata", zero, "64:ff9b::a9fe:a9fe", false},
		{"DefaultAllowsNAT64Public", zero, "64:ff9b::c000:201", true},
		{"DenyRefusesLoopback", deny, "127.0.0.1", false},
		{"DenyRefusesLoopbackRange", deny, "127.9.9.9", false},
		{"DenyRefusesLoopbackIPv6", deny, "::1", false},
		{"DenyRefusesMappedLoopback", deny, "::ffff:127.0.0.1", false},
		{"DenyRefuses10", deny, "10.1.2.3", false},
		{"DenyRefuses172", deny, "172.16.0.1", false},
		{"DenyRefuses192", deny, "192.168.1.1", false},
		{"DenyRefusesULA", deny, "fc00::1", false},
		{"DenyRefusesCGNAT", deny, "100.64.0.1", false},
		{"DenyRefusesUnspecified", deny, "0.0.0.0", false},
		{"DenyRefusesThisNetwork", deny, "0.1.2.3", false},
		{"DenyRefusesUnspecifiedIPv6", deny, "::", false},
		{"DenyRefusesNAT64Private", deny, "64:ff9b::a00:1", false},
		{"DenyAllowsPublic", deny, "203.0.113.9", true},
		{"DenyAllowsBeside172", deny, "172.32.0.1", true},
		{"AllowMetadataAllowsMetadata", metadata, "169.254.169.254", true},
		{"AllowMetadataAllowsLinkLocal", metadata, "fe80::1", true},
		{"AllowPrefixOverridesDeny", denyAllow10, "10.1.2.3", true},
		{"AllowPrefixLeavesOthersDenied", denyAllow10, "127.0.0.1", false},
		{"AllowPrefixMatchesMapped", denyAllow10, "::ffff:10.1.2.3", true},
		{"AllowPrefixOverridesMetadata", allowMeta, "169.254.169.254", true},
		{"AllowPrefixIsExact", allowMeta, "169.254.169.253", false},
		{"InvalidAddress", zero, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var a netip.Addr
			if tt.addr != "" {
				a = netip.MustParseAddr(tt.addr)
			}
			err := tt.guard.Check(a)
			switch {
			case tt.ok && err != nil:
				t.Errorf("Check(%s) = %v; want nil", tt.addr, err)
			case !tt.ok && !errors.Is(err, ErrRefused):
				t.Errorf("Check(%s) = %v; want ErrRefused", tt.addr, err)
			}
		})
	}
}

func TestGuard_Control(t *testing.T) {
	g := Guard{DenyPrivate: true}
	if err := g.control("tcp", "127.0.0.1:80", nil); !errors.Is(err, ErrRefused) {
		t.Errorf("control(127.0.0.1:80) = %v; want ErrRefused", err)
	}
	if err := g.control("tcp", "[::ffff:127.0.0.1]:80", nil); !errors.Is(err, ErrRefused) {
		t.Errorf("control([::ffff:127.0.0.1]:80) = %v; want ErrRefused", err)
	}
	if err := g.control("tcp", "192.0.2.1:443", nil); err != nil {
		t.Errorf("control(192.0.2.1:443) = %v; want nil", err)
	}
	if err := g.control("tcp", "garbage", nil); !errors.Is(err, ErrRefused) {
		t.Errorf("control(garbage) = %v; want ErrRefused", err)
	}
}

// TestGuard_ControlRunsOnRealDials checks the second check is installed:
// with the first one bypassed, the socket-level check still refuses.
func TestGuard_ControlRunsOnRealDials(t *testing.T) {
	d, err := New(Options{Guard: Guard{DenyPrivate: true}})
	if err != nil {
		t.Fatal(err)
	}
	srv := newRecorder(t, success)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	conn, err := d.dialAddr(t.Context(), "tcp", net.JoinHostPort("127.0.0.1", port))
	if err == nil {
		conn.Close()
	}
	if !errors.Is(err, ErrRefused) {
		t.Errorf("dialAddr = %v; want ErrRefused from Control", err)
	}
}

func TestDispatcher_Do_Guard(t *testing.T) {
	t.Parallel()

	t.Run("RefusedLiteral", func(t *testing.T) {
		t.Parallel()
		srv := newRecorder(t, success)
		d, dials := newTestDispatcher(t, Options{Guard: Guard{DenyPrivate: true}})
		out := d.Do(t.Context(), &Request{ID: "t1", URL: srv.URL})
		wantOutcome(t, out, Failed, KindRefused)
		wantMessage(t, out, "loopback")
		if n := len(srv.requests()); n != 0 {
			t.Errorf("server got %d requests; want 0", n)
		}
		if got := dials.all(); len(got) != 0 {
			t.Errorf("dialled %v; want no dial", got)
		}
	})

	t.Run("ResolvedToLoopbackRefused", func(t *testing.T) {
		t.Parallel()
		srv := newRecorder(t, success)
		res := newResolver(map[string][]string{"evil.test": {"127.0.0.1"}})
		d, dials := newTestDispatcher(t, Options{
			Guard: Guard{DenyPrivate: true}, LookupNetIP: res.LookupNetIP})
		out := d.Do(t.Context(), &Request{URL: "http://evil.test:" + port(t, srv.URL) + "/"})
		wantOutcome(t, out, Failed, KindRefused)
		if got := res.questions(); !slices.Equal(got, []string{"evil.test"}) {
			t.Errorf("resolver asked %v; want [evil.test]", got)
		}
		if got := dials.all(); len(got) != 0 {
			t.Errorf("dialled %v; want no dial", got)
		}
	})

	t.Run("ResolvedNameIsDialled", func(t *testing.T) {
		t.Parallel()
		srv := newRecorder(t, success)
		res := newResolver(map[string][]string{"hook.test": {"127.0.0.1"}})
		d, _ := newTestDispatcher(t, Options{LookupNetIP: res.LookupNetIP})
		u := "http://hook.test:" + port(t, srv.URL) + "/x"
		out := d.Do(t.Context(), &Request{URL: u})
		wantOutcome(t, out, Succeeded, "")
		if got := srv.only(t).Host; got != "hook.test:"+port(t, srv.URL) {
			t.Errorf("Host = %q; want the name, not the address", got)
		}
	})

	t.Run("MetadataRefusedWithoutDial", func(t *testing.T) {
		t.Parallel()
		res := newResolver(map[string][]string{"metadata.test": {"169.254.169.254"}})
		d, dials := newTestDispatcher(t, Options{LookupNetIP: res.LookupNetIP})
		out := d.Do(t.Context(), &Request{URL: "http://metadata.test/latest/meta-data/"})
		wantOutcome(t, out, Failed, KindRefused)
		wantMessage(t, out, "metadata")
		if got := res.questions(); len(got) != 1 {
			t.Errorf("resolver asked %v; want one question", got)
		}
		if got := dials.all(); len(got) != 0 {
			t.Errorf("dialled %v; want no dial", got)
		}
	})

	t.Run("MappedIPv6Refused", func(t *testing.T) {
		t.Parallel()
		srv := newRecorder(t, success)
		res := newResolver(map[string][]string{"mapped.test": {"::ffff:127.0.0.1"}})
		d, dials := newTestDispatcher(t, Options{
			Guard: Guard{DenyPrivate: true}, LookupNetIP: res.LookupNetIP})
		out := d.Do(t.Context(), &Request{URL: "http://mapped.test:" + port(t, srv.URL) + "/"})
		wantOutcome(t, out, Failed, KindRefused)
		if got := dials.all(); len(got) != 0 {
			t.Errorf("dialled %v; want no dial", got)
		}
	})

	t.Run("OnlyAllowedAddressesDialled", func(t *testing.T) {
		t.Parallel()
		srv := newRecorder(t, success)
		res := newResolver(map[string][]string{
			"mixed.test": {"169.254.169.254", "127.0.0.1", "fe80::1"}})
		d, dials := newTestDispatcher(t, Options{LookupNetIP: res.LookupNetIP})
		out := d.Do(t.Context(), &Request{URL: "http://mixed.test:" + port(t, srv.URL) + "/"})
		wantOutcome(t, out, Succeeded, "")
		for _, a := range dials.all() {
			if ap := netip.MustParseAddrPort(a); ap.Addr() != netip.MustParseAddr("127.0.0.1") {
				t.Errorf("dialled %s; want only 127.0.0.1", a)
			}
		}
	})

	t.Run("AllowOverridesDeny", func(t *testing.T) {
		t.Parallel()
		srv := newRecorder(t, success)
		d, _ := newTestDispatcher(t, Options{Guard: Guard{
			DenyPrivate: true,
			Allow:       []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
		}})
		out := d.Do(t.Context(), &Request{URL: srv.URL})
		wantOutcome(t, out, Succeeded, "")
	})

	t.Run("RedirectToRefused", func(t *testing.T) {
		t.Parallel()
		srv := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://metadata.test/latest/", http.StatusFound)
		})
		res := newResolver(map[string][]string{"metadata.test": {"169.254.169.254"}})
		d, dials := newTestDispatcher(t, Options{LookupNetIP: res.LookupNetIP})
		out := d.Do(t.Context(), &Request{URL: srv.URL})
		wantOutcome(t, out, Failed, KindRefused)
		if n := len(srv.requests()); n != 1 {
			t.Errorf("server got %d requests; want 1", n)
		}
		for _, a := range dials.all() {
			if netip.MustParseAddrPort(a).Addr().Is4() &&
				!netip.MustParseAddrPort(a).Addr().IsLoopback() {
				t.Errorf("dialled %s", a)
			}
		}
	})

	// Both servers listen on 127.0.0.1; an allowlist of exactly that address
	// lets the first hop through under DenyPrivate, and the second hop names
	// another loopback address.
	allowOnly127 := Guard{
		DenyPrivate: true,
		Allow:       []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
	}

	t.Run("RedirectToRefusedLiteral", func(t *testing.T) {
		t.Parallel()
		srv := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
			_, p, _ := net.SplitHostPort(r.Host)
			http.Redirect(w, r, "http://[::1]:"+p+"/", http.StatusFound)
		})
		d, dials := newTestDispatcher(t, Options{Guard: allowOnly127})
		out := d.Do(t.Context(), &Request{URL: srv.URL})
		wantOutcome(t, out, Failed, KindRefused)
		wantMessage(t, out, "::1")
		for _, a := range dials.all() {
			if netip.MustParseAddrPort(a).Addr() != netip.MustParseAddr("127.0.0.1") {
				t.Errorf("dialled %s; want only 127.0.0.1", a)
			}
		}
	})

	t.Run("RedirectToMappedLiteralUnwrapped", func(t *testing.T) {
		t.Parallel()
		target := newRecorder(t, success)
		u := "http://[::ffff:127.0.0.1]:" + port(t, target.URL) + "/"
		srv := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, u, http.StatusFound)
		})
		d, _ := newTestDispatcher(t, Options{Guard: allowOnly127})
		out := d.Do(t.Context(), &Request{URL: srv.URL})
		wantOutcome(t, out, Succeeded, "")
		target.only(t)
	})

	t.Run("DNSErrorRetried", func(t *testing.T) {
		t.Parallel()
		res := newResolver(nil)
		d, dials := newTestDispatcher(t, Options{LookupNetIP: res.LookupNetIP})
		out := d.Do(t.Context(), &Request{URL: "http://nowhere.test/"})
		wantOutcome(t, out, Retry, KindTransport)
		wantMessage(t, out, "no such host")
		if len(dials.all()) != 0 {
			t.Errorf("dialled %v; want no dial", dials.all())
		}
	})

	t.Run("NoAddressesRetried", func(t *testing.T) {
		t.Parallel()
		lookup := func(context.Context, string) ([]netip.Addr, error) { return nil, nil }
		d, _ := newTestDispatcher(t, Options{LookupNetIP: lookup})
		out := d.Do(t.Context(), &Request{URL: "http://empty.test/"})
		wantOutcome(t, out, Retry, KindTransport)
		wantMessage(t, out, "no addresses")
	})

	t.Run("ConnectionRefusedRetried", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		d, _ := newTestDispatcher(t, Options{})
		out := d.Do(t.Context(), &Request{URL: fmt.Sprintf("http://%s/", addr)})
		wantOutcome(t, out, Retry, KindTransport)
		wantMessage(t, out, "refused")
		if out.StatusCode != 0 || out.Body != nil || out.Err.StatusCode != 0 {
			t.Errorf("no reply came, yet StatusCode %d, Body %q", out.StatusCode, out.Body)
		}
	})
}

// port returns the port of the URL rawURL.
func port(t *testing.T, rawURL string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Port()
}
