package welch

import (
	"math"
	"testing"
)

func TestT(t *testing.T) {
	same := []float64{10, 12, 11, 13, 9}
	if got := T(same, same); got != 0 {
		t.Errorf("T of a sample with itself = %v, want 0", got)
	}
	// Means 11 and 21, variances 2.5 and 2.5, five each: se = 1.
	shifted := []float64{20, 22, 21, 23, 19}
	if got := T(same, shifted); math.Abs(got+10) > 1e-9 {
		t.Errorf("T = %v, want -10", got)
	}
	if got := T([]float64{1, 1}, []float64{1, 1}); got != 0 {
		t.Errorf("T without variance = %v, want 0", got)
	}
}
