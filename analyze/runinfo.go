package analyze

import (
	"errors"
	"path/filepath"
	"time"

	"github.com/loadtape/loadtape/runspec"
)

// The run file (run.json) is runspec's; these names are analyze's view of
// it.
type (
	RunInfo      = runspec.Run
	StageInfo    = runspec.Stage
	MonitorInfo  = runspec.Monitor
	ProfileInfo  = runspec.Profile
	ScenarioInfo = runspec.Scenario
)

// ReadRunInfo reads dir/run.json; every error is bad input.
func ReadRunInfo(dir string) (*RunInfo, error) {
	ri, err := runspec.Read(dir)
	if err != nil {
		if errors.Is(err, runspec.ErrBadRunFile) {
			// The sentinel's own text says nothing the path does not.
			return nil, badInputf("%s", trimSentinel(err))
		}
		return nil, badInputf("%v", err)
	}
	return ri, nil
}

func trimSentinel(err error) string {
	s := err.Error()
	p := runspec.ErrBadRunFile.Error() + ": "
	if len(s) > len(p) && s[:len(p)] == p {
		return s[len(p):]
	}
	return s
}

func parseTime(s string) (time.Time, error) { return runspec.ParseTime(s) }

// mergeRunInfo joins the run.json of several shards of one run.
func mergeRunInfo(dirs []string, infos []*RunInfo) (*RunInfo, error) {
	if err := checkShards(dirs, infos); err != nil {
		return nil, err
	}
	out := *infos[0]
	out.Stages = append([]StageInfo(nil), infos[0].Stages...)
	for i, ri := range infos[1:] {
		if ri.ID != out.ID {
			return nil, badInputf("%s: run id %q differs from %q in %s: analyze takes the shards of one run", filepath.Join(dirs[i+1], runspec.FileName), ri.ID, out.ID, filepath.Join(dirs[0], runspec.FileName))
		}
		for _, s := range ri.Stages {
			j := out.StageIndex(s.Scenario, s.Stage)
			if j < 0 {
				out.Stages = append(out.Stages, s)
				continue
			}
			o := &out.Stages[j]
			if s.Start < o.Start { // RFC 3339 in UTC sorts as text; mixed zones are rare enough
				o.Start = s.Start
			}
			if s.End > o.End {
				o.End = s.End
			}
			// Whether a shard's run.json holds its share of the users or the
			// stage's total is the replayer's choice; the larger is right
			// for the latter and a lower bound for the former.
			o.Users = max(o.Users, s.Users)
		}
		out.Interrupted = out.Interrupted || ri.Interrupted
		if ri.Ended > out.Ended {
			out.Ended = ri.Ended
		}
		if ri.Started < out.Started {
			out.Started = ri.Started
		}
		out.Monitor = append(out.Monitor, ri.Monitor...)
	}
	return &out, nil
}
