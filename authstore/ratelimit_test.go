package authstore

import (
	"net/netip"
	"testing"
)

// TestSourcePrefix: one host by IPv4, one site by IPv6, and an IPv4 address
// the same source however it arrived.
func TestSourcePrefix(t *testing.T) {
	tests := []struct {
		a, b string
		same bool
	}{
		{"192.0.2.1", "192.0.2.1", true},
		{"192.0.2.1", "192.0.2.2", false},
		{"2001:db8:1:2::1", "2001:db8:1:2:ffff::9", true},
		{"2001:db8:1:2::1", "2001:db8:1:3::1", false},
		{"::ffff:192.0.2.1", "192.0.2.1", true},
	}
	for _, tt := range tests {
		t.Run(tt.a+" "+tt.b, func(t *testing.T) {
			ka, kb := SourcePrefix(netip.MustParseAddr(tt.a)), SourcePrefix(netip.MustParseAddr(tt.b))
			if (ka == kb) != tt.same {
				t.Errorf("SourcePrefix(%s) = %v, SourcePrefix(%s) = %v; same = %v", tt.a, ka, tt.b, kb, tt.same)
			}
		})
	}
}
