package analyze

import (
	"encoding/json"

	"github.com/loadtape/loadtape/analyze/analyzetest"
	"github.com/loadtape/loadtape/captures"
)

type model = analyzetest.Model

var (
	serialized = analyzetest.Serialized
	pool       = analyzetest.Pool
	retrograde = analyzetest.Retrograde
	quadratic  = analyzetest.Quadratic
	healthy    = analyzetest.Healthy
	gpuBound   = analyzetest.GPUBound
	cpuBound   = analyzetest.CPUBound
)

// simulate runs a model and reads its run.json as analyze does.
func simulate(m model, seed uint64) (*RunInfo, []captures.Result, []captures.Sample) {
	run, rows, samples := analyzetest.Simulate(m, seed)
	var info RunInfo
	if err := json.Unmarshal(run.JSON(), &info); err != nil {
		panic(err)
	}
	return &info, rows, samples
}
