package analyze

import "testing"

// A batch full at its slot limit keeps TPOT on a plateau; the order of the
// plateau's values is noise and must not read as a fall.
func TestDecodeTrendThroughAPlateau(t *testing.T) {
	t.Parallel()
	users := []float64{1, 4, 8, 16, 32, 64}
	tpot := []float64{7.862, 10.225, 12.968, 13.639, 13.637, 13.593} // seed 1's BatchSlots run, plateau reversed
	if raw := spearman(users, tpot); raw >= llmTrend {
		t.Fatalf("ranked as it comes ρ = %.3f: the case no longer shows the noise", raw)
	}
	if got := spearman(users, nearTies(tpot, decodeTie)); got < 0.9 {
		t.Errorf("with the plateau tied ρ = %.3f, want ≥ 0.9", got)
	}
	// Ties never make a rise out of a flat or falling pace.
	flat := []float64{10, 10.05, 9.98, 10.1, 10.02, 9.99}
	if got := spearman(users, nearTies(flat, decodeTie)); got != 0 {
		t.Errorf("flat TPOT: ρ = %.3f, want 0", got)
	}
	falling := []float64{14, 13, 12, 11.9, 10, 9}
	if got := spearman(users, nearTies(falling, decodeTie)); got > -0.9 {
		t.Errorf("falling TPOT: ρ = %.3f, want ≤ −0.9", got)
	}
}

func TestMidRanks(t *testing.T) {
	t.Parallel()
	got := midRanks([]float64{30, 30, 30, 490, 12})
	want := []float64{3, 3, 3, 5, 1}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("midRanks = %v, want %v", got, want)
		}
	}
}
