package analyze

import (
	"os"
	"strconv"
)

// testSeed seeds the queueing models; LOADTAPE_SEED overrides it to check
// that the detectors do not depend on one lucky draw.
var testSeed = func() uint64 {
	if v, err := strconv.ParseUint(os.Getenv("LOADTAPE_SEED"), 10, 64); err == nil {
		return v
	}
	return 7
}()
