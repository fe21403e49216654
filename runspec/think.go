package runspec

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Think is the pause a virtual user takes after each request. At most one
// field is set; none means no pause. Profiles write it in YAML, run files
// in JSON, with the same keys.
type Think struct {
	Uniform     []Duration `yaml:"uniform" json:"uniform,omitempty"`         // [min, max]
	Exponential Duration   `yaml:"exponential" json:"exponential,omitempty"` // mean
	Constant    Duration   `yaml:"constant" json:"constant,omitempty"`
	AsRecorded  bool       `yaml:"as_recorded" json:"as_recorded,omitempty"` // the gap the capture shows after the exchange
}

// Validate checks that at most one distribution is set and that its
// durations are in order.
func (t Think) Validate() error {
	set := 0
	if len(t.Uniform) > 0 {
		set++
		if len(t.Uniform) != 2 || t.Uniform[0] < 0 || t.Uniform[1] < t.Uniform[0] {
			return errors.New("uniform wants [min, max] with 0 <= min <= max")
		}
	}
	if t.Exponential != 0 {
		set++
		if t.Exponential < 0 {
			return errors.New("exponential mean must be > 0")
		}
	}
	if t.Constant != 0 {
		set++
		if t.Constant < 0 {
			return errors.New("constant must be >= 0")
		}
	}
	if t.AsRecorded {
		set++
	}
	if set > 1 {
		return errors.New("set only one of uniform, exponential, constant, as_recorded")
	}
	return nil
}

// Mean is the mean pause before time scaling; false when the profile
// leaves it to the capture (as_recorded).
func (t Think) Mean() (time.Duration, bool) {
	switch {
	case t.AsRecorded:
		return 0, false
	case len(t.Uniform) == 2:
		return (t.Uniform[0].D() + t.Uniform[1].D()) / 2, true
	case t.Exponential != 0:
		return t.Exponential.D(), true
	}
	return t.Constant.D(), true // zero when nothing is set: users send back to back
}

// Duration is a time.Duration written as a Go duration string ("90s",
// "5m") in YAML and JSON.
type Duration time.Duration

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// UnmarshalYAML accepts Go duration strings.
func (d *Duration) UnmarshalYAML(b []byte) error {
	s := strings.Trim(strings.TrimSpace(string(b)), `"'`)
	return d.parse(s)
}

// UnmarshalJSON accepts Go duration strings, as MarshalJSON writes them.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("want a duration like 30s or 5m, got %s", b)
	}
	return d.parse(s)
}

func (d *Duration) parse(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("want a duration like 30s or 5m, got %q", s)
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes the duration as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }
