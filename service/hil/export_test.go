package hil

// Test-only names for the external tests (package hil_test).
var (
	WithPolling = withPolling
	IsHILError  = isHILError
)
