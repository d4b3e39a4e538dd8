package dispatch

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
)

// ErrRefused is wrapped by every error of the dispatch guard, so that
// errors.Is(err, ErrRefused) reports a refused address.
var ErrRefused = errors.New("address refused")

// Guard decides which addresses an attempt may connect to. It is checked
// after DNS, on the addresses actually dialled, so a name that resolves (or
// rebinds) to a forbidden address cannot slip past it. The zero Guard
// refuses only link-local and cloud metadata addresses.
type Guard struct {
	// DenyPrivate refuses private (10/8, 172.16/12, 192.168/16, fc00::/7),
	// loopback, shared CGNAT (100.64/10) and unspecified (0/8, ::)
	// addresses. Defaults to false: every such address is allowed.
	DenyPrivate bool

	// AllowMetadata lifts the refusal, on by default, of link-local
	// addresses (169.254/16, fe80::/10) and of the cloud metadata services
	// (169.254.169.254, fd00:ec2::254, 100.100.100.200). Defaults to false.
	AllowMetadata bool

	// Allow lists prefixes that are always allowed, overriding both rules
	// above. An IPv4 prefix also matches IPv4-mapped IPv6 addresses.
	// Defaults to none.
	Allow []netip.Prefix
}

// Read-only tables of the guard.
var (
	// metadataAddrs are cloud instance metadata services: AWS, GCP and Azure
	// (169.254.169.254), AWS over IPv6 and Alibaba Cloud.
	metadataAddrs = []netip.Addr{
		netip.MustParseAddr("169.254.169.254"),
		netip.MustParseAddr("fd00:ec2::254"),
		netip.MustParseAddr("100.100.100.200"),
	}
	sharedPrefix      = netip.MustParsePrefix("100.64.0.0/10")
	thisNetworkPrefix = netip.MustParsePrefix("0.0.0.0/8")
	nat64Prefix       = netip.MustParsePrefix("64:ff9b::/96")
)

// Check returns nil if the guard allows a, else an error wrapping
// ErrRefused that says why. IPv4-mapped IPv6 addresses are judged as the
// IPv4 address they carry, and NAT64 addresses (64:ff9b::/96) as the IPv4
// address they reach. Zones are ignored.
func (g Guard) Check(a netip.Addr) error {
	a = a.Unmap().WithZone("")
	if !a.IsValid() {
		return fmt.Errorf("guard: %w: invalid address", ErrRefused)
	}
	for _, p := range g.Allow {
		if p.Contains(a) {
			return nil
		}
	}
	if why := g.denial(a); why != "" {
		return fmt.Errorf("guard %s: %w: %s", a, ErrRefused, why)
	}
	return nil
}

// denial says why a, unmapped and without zone, is refused, or returns ""
// if it is not.
func (g Guard) denial(a netip.Addr) string {
	// A NAT64 gateway would carry the connection to the embedded IPv4
	// address, so that is the address to judge.
	if nat64Prefix.Contains(a) {
		b := a.As16()
		if why := g.denial(netip.AddrFrom4([4]byte(b[12:]))); why != "" {
			return why + " behind NAT64"
		}
		return ""
	}

	if !g.AllowMetadata {
		for _, m := range metadataAddrs {
			if a == m {
				return "cloud metadata address"
			}
		}
		if a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() {
			return "link-local address"
		}
	}

	if g.DenyPrivate {
		switch {
		case a.IsLoopback():
			return "loopback address"
		case a.IsPrivate():
			return "private address"
		case sharedPrefix.Contains(a):
			return "shared (CGNAT) address"
		case a.IsUnspecified() || thisNetworkPrefix.Contains(a):
			return "unspecified address"
		}
	}
	return ""
}

// control is the net.Dialer.Control of a guarded dialer: a second check, on
// the very address the socket is about to connect to, before any packet is
// sent.
func (g Guard) control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("guard %s: %w: cannot parse address", address, ErrRefused)
	}
	return g.Check(ap.Addr())
}

// dial is the DialContext of the Dispatcher's transport. It resolves host
// itself, checks every address with the guard, and dials only the allowed
// ones, in the resolver's order, so no packet ever goes to a refused address.
func (d *Dispatcher) dial(ctx context.Context, network, hostport string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", hostport, err)
	}

	// The transport dials on a context detached from the request, so that a
	// connection can outlive a cancelled attempt and serve the next one.
	// Bound it here instead.
	ctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()

	addrs, err := d.resolve(ctx, host)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", hostport, err)
	}

	// Check every address before dialling any.
	var allowed []netip.Addr
	var refusal error
	for _, a := range addrs {
		if err := d.guard.Check(a); err != nil {
			if refusal == nil {
				refusal = err
			}
			continue
		}
		if familyMatches(network, a) {
			allowed = append(allowed, a.Unmap())
		}
	}
	if len(allowed) == 0 {
		if refusal == nil {
			refusal = fmt.Errorf("no %s address", network)
		}
		return nil, fmt.Errorf("dial %s: %w", hostport, refusal)
	}

	// Dial the allowed addresses in turn until one answers.
	var first error
	for _, a := range allowed {
		conn, err := d.dialAddr(ctx, network, net.JoinHostPort(a.String(), port))
		if err == nil {
			return conn, nil
		}
		if first == nil {
			first = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, first
}

// resolve returns the addresses of host: the address itself for an IP
// literal, else what the resolver says.
func (d *Dispatcher) resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{a}, nil
	}
	addrs, err := d.lookup(ctx, host)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", host, err)
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("resolve %s: no addresses", host)
	}
	return addrs, nil
}

// familyMatches reports whether a can be dialled on network ("tcp", "tcp4"
// or "tcp6").
func familyMatches(network string, a netip.Addr) bool {
	switch network {
	case "tcp4":
		return a.Unmap().Is4()
	case "tcp6":
		return !a.Unmap().Is4()
	}
	return true
}
