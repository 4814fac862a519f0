package proxy

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Login results as counted and logged.
const (
	resultOK            = "ok"
	resultDenied        = "denied"
	resultThrottled     = "throttled"
	resultUnavailable   = "unavailable"
	resultUpstreamError = "upstream_error"
)

// Reasons a connection was refused at accept.
const (
	refusedMaxConns      = "max_conns"
	refusedMaxConnsPerIP = "max_conns_per_ip"
)

// Metrics counts what the mail front-ends do. One value serves every server
// (the protocol is a label); a nil *Metrics counts nothing.
type Metrics struct {
	logins  *prometheus.CounterVec
	live    *prometheus.GaugeVec
	dial    *prometheus.HistogramVec
	relayed *prometheus.CounterVec
	refused *prometheus.CounterVec
}

// NewMetrics creates the proxy's collectors and registers them with reg
// (when reg is not nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "postern", Name: "logins_total",
			Help: "Login attempts on the mail front-ends by result (ok, denied, throttled, unavailable, upstream_error).",
		}, []string{"protocol", "result"}),
		live: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "postern", Name: "sessions_live",
			Help: "Relayed sessions currently open.",
		}, []string{"protocol"}),
		dial: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "postern", Name: "upstream_dial_seconds",
			Help: "Time to connect to the upstream (including an implicit TLS handshake), failures included.",
			// 1 ms (loopback) up to 16 s (past the default dial timeout).
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 8),
		}, []string{"protocol"}),
		relayed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "postern", Name: "relayed_bytes_total",
			Help: "Bytes relayed after login; direction in is client to upstream, out is upstream to client.",
		}, []string{"protocol", "direction"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "postern", Name: "connections_refused_total",
			Help: "Connections closed at accept because a connection cap was reached.",
		}, []string{"protocol", "reason"}),
	}
	if reg != nil {
		reg.MustRegister(m.logins, m.live, m.dial, m.relayed, m.refused)
	}
	return m
}

func (m *Metrics) login(p, result string) {
	if m != nil {
		m.logins.WithLabelValues(p, result).Inc()
	}
}

func (m *Metrics) sessionsLive(p string, delta float64) {
	if m != nil {
		m.live.WithLabelValues(p).Add(delta)
	}
}

func (m *Metrics) dialed(p string, d time.Duration) {
	if m != nil {
		m.dial.WithLabelValues(p).Observe(d.Seconds())
	}
}

func (m *Metrics) refusedConn(p, reason string) {
	if m != nil {
		m.refused.WithLabelValues(p, reason).Inc()
	}
}

// relayCounter returns the counter of one direction, or nil.
func (m *Metrics) relayCounter(p, direction string) prometheus.Counter {
	if m == nil {
		return nil
	}
	return m.relayed.WithLabelValues(p, direction)
}
