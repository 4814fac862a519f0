package proxy

import (
	"net/http"
	"net/netip"
	"strings"
)

// ClientAddr is the address an HTTP request came from: the socket's peer,
// or, when the peer is one of trusted (reverse proxies in front), the
// nearest X-Forwarded-For hop that is not trusted. A malformed hop, or a
// chain of trusted hops only, leaves the peer (P8: a client
// cannot pick its own address). A forwarded address has port 0.
func ClientAddr(r *http.Request, trusted []netip.Prefix) netip.AddrPort {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.AddrPort{}
	}
	peer := netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	if !isTrusted(peer.Addr(), trusted) {
		return peer
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			return peer
		}
		if a = a.Unmap(); !isTrusted(a, trusted) {
			return netip.AddrPortFrom(a, 0)
		}
	}
	return peer
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
