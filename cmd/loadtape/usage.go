package main

import "strings"

// isUsageError recognises the errors cobra returns for bad arguments before
// any RunE runs (unknown command, wrong argument count), which carry no type.
func isUsageError(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand", "accepts ", "requires at least", "requires at most", "invalid argument", "flag needs an argument", "required flag"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}
