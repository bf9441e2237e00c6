package core

import "github.com/bmi-go/bmi/service/fault"

// Each operation's commit step is the index of the step whose completion
// commits it: a failure before it rolls the operation back, a failure after
// it is retried forward.
var (
	errNotFound = fault.ErrNotFound
	errInvalid  = fault.ErrInvalid
)

// registry lists every multi-step operation: its steps (rebuilt from the
// journal after a crash) and its commit step.
func (s *Service) registry() map[string]opKind {
	return map[string]opKind{
		"import":      {steps: s.copySteps, commit: copyCommit},
		"copy":        {steps: s.copySteps, commit: copyCommit},
		"snapshot":    {steps: s.copySteps, commit: copyCommit},
		"export":      {steps: s.exportSteps, commit: 1},
		"remove":      {steps: s.removeSteps, commit: 1},
		"create-disk": {steps: s.createDiskSteps, commit: 4},
		"delete-disk": {steps: s.deleteDiskSteps, commit: 0},
		"provision":   {steps: s.provisionSteps, commit: 7},
		"deprovision": {steps: s.deprovisionSteps, commit: 0},
		"set-boot":    {steps: func() []step { return []step{s.putBootStep(), s.writeFilesStep()} }, commit: 1},
		"clear-boot":  {steps: s.clearBootSteps, commit: 0},
		"upload":      {steps: s.uploadSteps, commit: 3},
	}
}
