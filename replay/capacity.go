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
// goroutines and buffers), with the garbage the run's collector settings
// let pile up (measured with GOGC=400; runs now leave GOGC off under a soft
// memory limit that grows by userMemory a user, replay/gc.go). Measured
// by BenchmarkMemoryPerUser (capacity_bench_test.go): the
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

// users is how many users at once the capacity holds when each holds
// conns connections, and what limits it; -1 when nothing is known.
func (c capacity) users(conns int) (n int, why string) {
	n = -1
	if c.fds > 0 {
		n = max(int(c.fds)-fdReserve, 0) / conns
		per := "one connection per user"
		if conns > 1 {
			per = fmt.Sprintf("%d connections per user (an MCP session and its standalone GET stream)", conns)
		}
		why = fmt.Sprintf("open files limit %d (ulimit -n) less %d kept for files and listeners, %s", c.fds, fdReserve, per)
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

// load is what one scenario asks of the machine at its largest stage.
type load struct {
	users int // this shard's users (open mode: requests being sent at once)
	stage int // 1-based; 0 in open mode, whose workers do not follow stages
	conns int // connections a user can hold at once
	// thinks: closed users that pause at least a moment after every
	// request and hold no stream. Past the open files limit they share
	// the connections the transport caps there (connLimit), waiting for
	// one as send lag: 100,000 users thinking 2–5 s have a few hundred
	// requests in flight, not 100,000.
	thinks bool
}

// peakLoad is a scenario's load at its largest stage. A user of a service
// whose capture has MCP standalone GET streams holds one more connection
// while its stream is open.
func (p *plan) peakLoad(name string) load {
	sc := p.profile.Scenarios[name]
	l := load{conns: 1}
	if sp := p.pool.service(sc.Service, sc.IncludeFailed); sp != nil {
	streams:
		for _, es := range sp.ops {
			for _, e := range es {
				if e.stream {
					l.conns = 2
					break streams
				}
			}
		}
	}
	if sc.Mode == ModeOpen {
		l.users = sc.workerLimit()
		return l
	}
	t := sc.Think
	l.thinks = sc.Mode == ModeClosed && l.conns == 1 && ((len(t.Uniform) == 2 && t.Uniform[0] > 0) || t.Constant > 0)
	for k, st := range sc.Stages {
		if n := shardCount(st.Users, p.shard); n > l.users {
			l.users, l.stage = n, k+1
		}
	}
	return l
}

// checkCapacity refuses a run whose users this machine cannot hold at
// once: the selected scenarios run side by side, so their peaks add up.
func (p *plan) checkCapacity(c capacity) error {
	total, conns := 0, 0
	var parts []string
	for _, name := range p.scenarios {
		l := p.peakLoad(name)
		total += l.users
		parts = append(parts, fmt.Sprintf("%s %d", name, l.users))
		if l.thinks {
			// Bounded by memory only (checked below); its connections by
			// the transport's cap.
			p.peakConns += l.users
			if c.fds > fdReserve {
				p.peakConns = min(p.peakConns, int(c.fds)-fdReserve)
			}
			continue
		}
		if limit, why := c.users(l.conns); limit >= 0 && l.users > limit {
			what := fmt.Sprintf("scenario %q stage %d: %d users", name, l.stage, l.users)
			if l.stage == 0 {
				what = fmt.Sprintf("scenario %q: workers %d (requests sent at once)", name, l.users)
			}
			return badInput(fmt.Errorf("%s is more than this machine can hold: %d (%s)", what, limit, why))
		}
		conns += l.users * l.conns
		p.peakConns += l.users * l.conns
	}
	side := fmt.Sprintf("scenarios run side by side with %d users at once (%s)", total, strings.Join(parts, ", "))
	hint := "run fewer with --scenario, or shard with --shard"
	if fdsLeft := int(c.fds) - fdReserve; c.fds > 0 && conns > fdsLeft {
		return badInput(fmt.Errorf("%s holding up to %d connections, more than this machine can hold: %d (open files limit %d (ulimit -n) less %d kept for files and listeners); %s",
			side, conns, max(fdsLeft, 0), c.fds, fdReserve, hint))
	}
	if limit, why := (capacity{mem: c.mem}).users(1); limit >= 0 && total > limit {
		return badInput(fmt.Errorf("%s, more than this machine can hold: %d (%s); %s", side, limit, why, hint))
	}
	return nil
}
