package replay

import (
	"fmt"
	"strconv"
	"strings"
)

// shardSpec is --shard I/N: this machine runs user indices k with
// k mod N = I−1 (open mode: arrivals i mod N = I−1), so N machines with the
// same seed together make exactly the unsharded run.
type shardSpec struct{ i, n int }

func parseShard(s string) (shardSpec, error) {
	if s == "" {
		return shardSpec{1, 1}, nil
	}
	a, b, ok := strings.Cut(s, "/")
	i, err1 := strconv.Atoi(a)
	n, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || n < 1 || i < 1 || i > n {
		return shardSpec{}, badInput(fmt.Errorf("--shard %q: want I/N with 1 <= I <= N", s))
	}
	return shardSpec{i, n}, nil
}

// shardCount is how many of users indices 0..users-1 shard sh runs (index
// k belongs to shard k mod N + 1).
func shardCount(users int, sh shardSpec) int {
	if users <= 0 {
		return 0
	}
	n := users / sh.n
	if (users % sh.n) >= sh.i {
		n++
	}
	return n
}
