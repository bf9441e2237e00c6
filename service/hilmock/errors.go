package hilmock

import (
	"fmt"
	"net/http"
)

// HIL's error types (CCI-MOC/hil hil/errors.py) and their status codes.
// Every error body is {"type": <type>, "msg": <text>}.
const (
	TypeValidation      = "ValidationError"      // 400: body or arguments do not fit the call
	TypeBadArgument     = "BadArgumentError"     // 400: an argument's value is not legal
	TypeAuthorization   = "AuthorizationError"   // 401: authentication failed, or no access
	TypeNotFound        = "NotFoundError"        // 404
	TypeDuplicate       = "DuplicateError"       // 409: already exists
	TypeBlocked         = "BlockedError"         // 409: something else prevents it
	TypeProjectMismatch = "ProjectMismatchError" // 409: node/network project rules
	TypeIllegalState    = "IllegalStateError"    // 409
	TypeOBM             = "OBMError"             // 500: the power driver failed
	TypeSwitch          = "SwitchError"          // 500: the switch driver failed
	TypeAllocation      = "AllocationError"      // 500: no VLAN left in the pool
	TypeServer          = "ServerError"          // 500: anything else
)

var statusOfType = map[string]int{
	TypeValidation: http.StatusBadRequest, TypeBadArgument: http.StatusBadRequest,
	TypeAuthorization: http.StatusUnauthorized, TypeNotFound: http.StatusNotFound,
	TypeDuplicate: http.StatusConflict, TypeBlocked: http.StatusConflict,
	TypeProjectMismatch: http.StatusConflict, TypeIllegalState: http.StatusConflict,
	TypeOBM: http.StatusInternalServerError, TypeSwitch: http.StatusInternalServerError,
	TypeAllocation: http.StatusInternalServerError, TypeServer: http.StatusInternalServerError,
}

// apiError is an error reported to the client as HIL reports it.
type apiError struct {
	Type string `json:"type"`
	Msg  string `json:"msg"`
}

func (e *apiError) Error() string { return e.Type + ": " + e.Msg }

func (e *apiError) status() int {
	if s, ok := statusOfType[e.Type]; ok {
		return s
	}
	return http.StatusInternalServerError
}

func errorf(typ, format string, args ...any) *apiError {
	return &apiError{Type: typ, Msg: fmt.Sprintf(format, args...)}
}

func notFound(format string, args ...any) *apiError { return errorf(TypeNotFound, format, args...) }

func unauthorized(format string, args ...any) *apiError {
	return errorf(TypeAuthorization, format, args...)
}
