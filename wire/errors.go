package wire

import "fmt"

// Stable error codes. They appear in REST error bodies and in error frames;
// clients switch on them, so they never change meaning.
const (
	CodeBadRequest   = "bad_request"
	CodeUnknownType  = "unknown_type"
	CodeUnauthorized = "unauthorized"
	CodeForbidden    = "forbidden"
	CodeNotFound     = "not_found"
	CodeRateLimited  = "rate_limited"
	CodeTooLarge     = "too_large"
	CodeConflict     = "conflict"
	CodeInvalidPhone = "invalid_phone"
	CodeInvalidCode  = "invalid_code"
	CodeCodeExpired  = "code_expired"
	CodeUnsupported  = "unsupported"
	CodeUnavailable  = "unavailable"
	// CodeMethodNotAllowed answers a REST path that exists with another
	// method; the Allow header lists the methods it takes.
	CodeMethodNotAllowed = "method_not_allowed"
	CodeInternal         = "internal"
)

// Error is a protocol error: a stable code, a human message and, for
// rate_limited, the number of seconds after which a retry can succeed.
type Error struct {
	Code       string `json:"code"`
	Message    string `json:"message"`
	RetryAfter int    `json:"retry_after,omitempty"`
}

func (e *Error) Error() string {
	if e.RetryAfter > 0 {
		return fmt.Sprintf("%s: %s (retry after %ds)", e.Code, e.Message, e.RetryAfter)
	}
	return e.Code + ": " + e.Message
}

// Errorf builds an *Error with a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorBody is the JSON body of every REST error answer.
type ErrorBody struct {
	Error *Error `json:"error"`
}

// HTTPStatus maps an error code to the HTTP status the REST API answers with.
func HTTPStatus(code string) int {
	switch code {
	case CodeBadRequest, CodeUnknownType, CodeInvalidPhone, CodeInvalidCode, CodeCodeExpired:
		return 400
	case CodeUnauthorized:
		return 401
	case CodeForbidden:
		return 403
	case CodeNotFound:
		return 404
	case CodeMethodNotAllowed:
		return 405
	case CodeConflict:
		return 409
	case CodeTooLarge:
		return 413
	case CodeRateLimited:
		return 429
	case CodeUnsupported:
		return 501
	case CodeUnavailable:
		return 503
	default:
		return 500
	}
}
