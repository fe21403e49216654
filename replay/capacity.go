package replay

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/shirou/gopsutil/v4/mem"
)

// userMemory is the memory one virtual user can take at its worst: its
// goroutine and one kept-alive connection of its own (the transport's two
// goroutines and buffers), with the garbage the run's GOGC=400 lets pile
// up. Measured by BenchmarkMemoryPerUser (capacity_bench_test.go): the
// peak RSS of the replaying process alone (the upstream in another
// process) with every user waiting on its own response at once, 4,000
// users against 1,000, on the 2-core development machine at 19:33 UTC on
// 1 Dec 2026: 50.1, 51.2 and 56.8 KiB per user in three fresh processes
// (peak RSS 102 MB at 1,000 users, 251–268 MB at 4,000). Rounded up to
// 64 KiB for larger recorded bodies and MCP sessions.
const userMemory = 64 << 10

// Reserves kept out of what users may take: the results and samples
// writers, the monitor, the metrics endpoint, standard streams and DNS need
// some descriptors and memory of their own whatever the user count.
const (
	fdReserve  = 256
	memReserve = 256 << 20
)

// capacity is what this machine gives a run: open file descriptors
// (RLIMIT_NOFILE, which Go raises to the hard limit at start) and memory
// available to the process (the host's, or the cgroup's when lower).
// Zero means unknown, and then it limits nothing.
type capacity struct {
	fds uint64
	mem uint64
}

// hostCapacity measures this machine now.
func hostCapacity() capacity {
	c := capacity{fds: openFileLimit()}
	if vm, err := mem.VirtualMemory(); err == nil {
		c.mem = vm.Available
	}
	if m, ok := cgroupMemoryLeft(); ok && (c.mem == 0 || m < c.mem) {
		c.mem = m
	}
	return c
}

// cgroupMemoryLeft reads a cgroup v2 memory limit minus its usage.
func cgroupMemoryLeft() (uint64, bool) {
	read := func(name string) (uint64, bool) {
		b, err := os.ReadFile("/sys/fs/cgroup/" + name)
		if err != nil {
			return 0, false
		}
		v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
		return v, err == nil // "max" means no limit
	}
	limit, ok := read("memory.max")
	if !ok {
		return 0, false
	}
	used, _ := read("memory.current")
	if used >= limit {
		return 0, true
	}
	return limit - used, true
}

// users is how many users at once the capacity holds, and what limits it.
func (c capacity) users() (n int, why string) {
	n = -1
	if c.fds > 0 {
		n = max(int(c.fds)-fdReserve, 0)
		why = fmt.Sprintf("open files limit %d (ulimit -n) less %d kept for files and listeners, one connection per user", c.fds, fdReserve)
	}
	if c.mem > 0 {
		m := 0
		if c.mem > memReserve {
			m = int((c.mem - memReserve) / userMemory)
		}
		if n < 0 || m < n {
			n = m
			why = fmt.Sprintf("%d MiB of memory available less %d MiB kept for the run, %d KiB per user", c.mem>>20, memReserve>>20, userMemory>>10)
		}
	}
	return n, why
}

// peakUsers is how many users (open mode: requests being sent at once)
// this machine runs of a scenario at its largest stage, and that stage.
func (p *plan) peakUsers(name string) (users, stage int) {
	sc := p.profile.Scenarios[name]
	if sc.Mode == ModeOpen {
		return sc.workerLimit(), 0
	}
	for k, st := range sc.Stages {
		if n := shardCount(st.Users, p.shard); n > users {
			users, stage = n, k+1
		}
	}
	return users, stage
}

// checkCapacity refuses a run whose users this machine cannot hold at
// once: the selected scenarios run side by side, so their peaks add up.
func (p *plan) checkCapacity(c capacity) error {
	limit, why := c.users()
	if limit < 0 {
		return nil
	}
	total := 0
	var parts []string
	for _, name := range p.scenarios {
		n, stage := p.peakUsers(name)
		total += n
		if n > limit {
			what := fmt.Sprintf("scenario %q stage %d: %d users", name, stage, n)
			if stage == 0 {
				what = fmt.Sprintf("scenario %q: workers %d (requests sent at once)", name, n)
			}
			return badInput(fmt.Errorf("%s is more than this machine can hold: %d (%s)", what, limit, why))
		}
		parts = append(parts, fmt.Sprintf("%s %d", name, n))
	}
	if total > limit {
		return badInput(fmt.Errorf("scenarios run side by side with %d users at once (%s), more than this machine can hold: %d (%s); run fewer with --scenario, or shard with --shard",
			total, strings.Join(parts, ", "), limit, why))
	}
	return nil
}
