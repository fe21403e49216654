package analyze

import (
	"math"
	"testing"
)

func TestSpearmanTies(t *testing.T) {
	t.Parallel()
	users := []float64{1, 5, 25, 50}
	// A flat series is no trend, whichever order its equal values came in.
	if got := spearman(users, []float64{30, 30, 30, 30}); got != 0 {
		t.Errorf("constant series: ρ = %v, want 0", got)
	}
	// Three equal values then a rise: the ties share rank 2, so the rise
	// is there but not perfect (ρ = 0.775, where ranking by position says 1).
	if got := spearman(users, []float64{30, 30, 30, 490}); math.Abs(got-0.7746) > 1e-3 {
		t.Errorf("tied then rising: ρ = %.4f, want 0.7746", got)
	}
	if got := spearman(users, []float64{1, 2, 3, 4}); math.Abs(got-1) > 1e-12 {
		t.Errorf("strictly rising: ρ = %v, want 1", got)
	}
	if got := spearman(users, []float64{4, 3, 2, 1}); math.Abs(got+1) > 1e-12 {
		t.Errorf("strictly falling: ρ = %v, want -1", got)
	}
}
