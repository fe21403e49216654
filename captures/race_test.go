//go:build race

package captures_test

const raceEnabled = true
