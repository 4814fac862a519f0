// Package welch is Welch's t-test, by which the timing tests judge whether
// two kinds of failed login can be told apart by their duration
// (A9: |t| below 4.5). It is for tests only.
package welch

import "math"

// Mean is the arithmetic mean of xs.
func Mean(xs []float64) float64 {
	sum := 0.0
	for _, x := range xs {
		sum += x
	}
	return sum / float64(len(xs))
}

// variance is the unbiased sample variance of xs.
func variance(xs []float64) float64 {
	m, sum := Mean(xs), 0.0
	for _, x := range xs {
		sum += (x - m) * (x - m)
	}
	return sum / float64(len(xs)-1)
}

// T is Welch's t statistic for two samples with unequal variances: the
// difference of their means over its standard error.
func T(a, b []float64) float64 {
	se := math.Sqrt(variance(a)/float64(len(a)) + variance(b)/float64(len(b)))
	if se == 0 {
		return 0
	}
	return (Mean(a) - Mean(b)) / se
}
