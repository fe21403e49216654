package replay

import "errors"

// Sentinel errors. Bad input (a profile, a capture or an option the run
// cannot start with) is wrapped in *InputError so that the command can exit 2;
// anything else is a runtime failure.
var (
	ErrNoTarget     = errors.New("replay: a service has no --target")
	ErrEmptyCapture = errors.New("replay: the capture holds no exchanges")
	ErrTargetDown   = errors.New("replay: target is down")
)

// InputError marks an error caused by bad input, found before any request
// was sent.
type InputError struct{ Err error }

func (e *InputError) Error() string { return e.Err.Error() }
func (e *InputError) Unwrap() error { return e.Err }

func badInput(err error) error {
	if err == nil {
		return nil
	}
	var ie *InputError
	if errors.As(err, &ie) {
		return err
	}
	return &InputError{Err: err}
}

// IsBadInput reports whether err (or one it wraps) is an *InputError.
func IsBadInput(err error) bool {
	var ie *InputError
	return errors.As(err, &ie)
}
