package analyze

import (
	"fmt"

	"github.com/loadtape/loadtape/runspec"
)

// The sandbox family: any request the MCP server let out of its sandbox.
func init() {
	register(detector{name: "sandbox", detect: func(sc *scenarioCtx) detected { return found(detectSandboxViolation(sc)) },
		kinds: []kindSpec{{kind: KindSandboxViolation, rank: 0}}})
}

// detectSandboxViolation: any request the MCP server let out of its
// sandbox, counted over the whole stage (warm-up included): the target is 0.
func detectSandboxViolation(sc *scenarioCtx) *Finding {
	var n int64
	byOp := map[string]int64{}
	example := ""
	for _, st := range sc.stages {
		for op, kinds := range st.raw {
			if v := kinds[runspec.ErrSandboxViolation]; v > 0 {
				n += v
				byOp[op] += v
			}
		}
		if all := st.Operations[AllOps]; all != nil && example == "" {
			example = all.ErrorText[runspec.ErrSandboxViolation]
		}
	}
	if n == 0 {
		return nil
	}
	op, top := AllOps, int64(0)
	for k, v := range byOp {
		if v > top || (v == top && k < op) {
			op, top = k, v
		}
	}
	return &Finding{Kind: KindSandboxViolation, Scenario: sc.name, Operation: op, Severity: SeverityHigh,
		Summary:  fmt.Sprintf("%s: %d request(s) escaped the tool sandbox (most in %s); the target is 0.", sc.name, n, op),
		Action:   "Fix the tool's path and command checks (resolve symlinks and '..', allow-list commands) before any further load testing.",
		Evidence: &SandboxEvidence{Count: n, ByOperation: byOp, ExampleError: example}}
}
