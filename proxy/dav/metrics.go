package dav

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/postern-dev/postern/authstore"
)

// Metrics counts what the DAV front-end does; a nil *Metrics counts
// nothing.
type Metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	authTime *prometheus.HistogramVec
	upstream prometheus.Histogram
}

// NewMetrics creates the collectors and registers them with reg (when not
// nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "postern", Subsystem: "dav", Name: "requests_total",
			Help: "DAV requests by method and answer status.",
		}, []string{"method", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "postern", Subsystem: "dav", Name: "request_seconds",
			Help: "Time to answer a DAV request, the upstream's time included.",
			// 0.5 ms up to 32 s.
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 9),
		}, []string{"method"}),
		authTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "postern", Subsystem: "dav", Name: "auth_seconds",
			Help: "Time of the credential check of a DAV request, by result (ok, denied, unavailable).",
			// 2 µs up to 8 s: app passwords take microseconds, account
			// passwords a KDF, throttled guesses seconds.
			Buckets: prometheus.ExponentialBuckets(0.000002, 4, 12),
		}, []string{"result"}),
		upstream: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "postern", Subsystem: "dav", Name: "upstream_seconds",
			Help:    "Time from sending a request upstream to the answer's header, failures included.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 9),
		}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.duration, m.authTime, m.upstream)
	}
	return m
}

var knownMethods = map[string]bool{
	"GET": true, "HEAD": true, "PUT": true, "POST": true, "DELETE": true, "OPTIONS": true,
	"PROPFIND": true, "PROPPATCH": true, "REPORT": true, "MKCOL": true, "MKCALENDAR": true,
	"COPY": true, "MOVE": true, "LOCK": true, "UNLOCK": true, "ACL": true,
}

func (m *Metrics) request(method string, status int, d time.Duration) {
	if m == nil {
		return
	}
	if !knownMethods[method] {
		method = "other" // the label set stays bounded
	}
	m.requests.WithLabelValues(method, strconv.Itoa(status)).Inc()
	m.duration.WithLabelValues(method).Observe(d.Seconds())
}

func (m *Metrics) auth(d time.Duration, err error) {
	if m == nil {
		return
	}
	result := "ok"
	switch {
	case errors.Is(err, authstore.ErrUnauthorized):
		result = "denied"
	case err != nil:
		result = "unavailable"
	}
	m.authTime.WithLabelValues(result).Observe(d.Seconds())
}

func (m *Metrics) upstreamDone(d time.Duration) {
	if m != nil {
		m.upstream.Observe(d.Seconds())
	}
}

// timedTransport measures the upstream's time to answer.
type timedTransport struct {
	next http.RoundTripper
	m    *Metrics
}

func (t timedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := t.next.RoundTrip(r)
	t.m.upstreamDone(time.Since(start))
	return resp, err
}
