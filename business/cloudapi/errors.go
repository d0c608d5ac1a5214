package cloudapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// Graph error types. SDKs rarely branch on them, but some log or match them,
// so they are spelled exactly as Graph spells them.
const (
	TypeOAuthException       = "OAuthException"
	TypeGraphMethodException = "GraphMethodException"
)

// Error codes Tern answers with. SDKs switch on these numbers (Meta tells
// integrators to build error handling on code and details, not on titles),
// so each keeps the meaning Meta gives it.
const (
	CodeAuthException          = 0
	CodeAPIService             = 2
	CodeAPIMethod              = 3
	CodeTooManyCalls           = 4
	CodePermissionDenied       = 10
	CodeParameterNotValid      = 33
	CodeInvalidParameter       = 100
	CodeAccessToken            = 190
	CodeAPIPermission          = 200
	CodePolicyBlocked          = 368
	CodeRateLimitIssues        = 80007
	CodeRateLimitHit           = 130429
	CodeGenericUserError       = 131000
	CodeRequiredParameter      = 131008
	CodeParameterValueNotValid = 131009
	CodeUndeliverable          = 131026
	CodeReEngagement           = 131047
	CodeUnsupportedMessageType = 131051
	CodeMediaDownload          = 131052
	CodeMediaUpload            = 131053
	CodeTemplateParamCount     = 132000
	CodeTemplateNotFound       = 132001
)

var errNoErrorObject = errors.New(`no "error" object`)

// SubcodeObjectNotFound is the Graph subcode that, with code 100, says the
// object in the path does not exist or the token cannot see it.
const SubcodeObjectNotFound = 33

// Error is a Graph API error. Its JSON form is the {"error":{...}} body Graph
// answers with, so an SDK's error parser reads it unchanged. Message carries
// the "(#code) title" prefix because that is where Graph puts the title.
type Error struct {
	Message   string
	Type      string
	Code      int
	Subcode   int
	Details   string
	FBTraceID string

	// cause keeps the Go error that led here (a JSON syntax error, say) so
	// errors.Is/As still see it; it never reaches the wire.
	cause error
}

// NewError builds an error in the Cloud API style: message "(#code) title",
// type OAuthException, details in error_data.
func NewError(code int, title, details string) *Error {
	return &Error{
		Message: "(#" + strconv.Itoa(code) + ") " + title,
		Type:    TypeOAuthException,
		Code:    code,
		Details: details,
	}
}

// Error reports the message and details together: a log line without the
// details is rarely enough to act on.
func (e *Error) Error() string {
	if e.Details == "" {
		return "cloudapi: " + e.Message
	}
	return "cloudapi: " + e.Message + ": " + e.Details
}

// Unwrap exposes the underlying cause, if any.
func (e *Error) Unwrap() error { return e.cause }

// Title is the message without its "(#code) " prefix. Webhook error objects
// carry the title on its own, so a failed status can be built from an *Error.
func (e *Error) Title() string {
	prefix := "(#" + strconv.Itoa(e.Code) + ") "
	return strings.TrimPrefix(e.Message, prefix)
}

// HTTPStatus is the status Graph answers this code with, following the
// "HTTP Status Code" column of Meta's WhatsApp error-code table. SDKs mostly
// key on the body, but retry logic often keys on 429 and 401.
func (e *Error) HTTPStatus() int {
	switch c := e.Code; {
	case c == CodeAuthException || c == CodeAccessToken:
		return http.StatusUnauthorized
	case c == CodePermissionDenied || (c >= 200 && c <= 299) || c == CodePolicyBlocked:
		return http.StatusForbidden
	case c == CodeTooManyCalls || c == CodeRateLimitIssues || c == CodeRateLimitHit:
		return http.StatusTooManyRequests
	case c == CodeTemplateNotFound:
		return http.StatusNotFound
	case c == CodeAPIService:
		return http.StatusServiceUnavailable
	case c == CodeAPIMethod || c == CodeGenericUserError:
		return http.StatusInternalServerError
	default:
		return http.StatusBadRequest
	}
}

// errorData is error_data: Cloud API errors always name the product.
type errorData struct {
	MessagingProduct string `json:"messaging_product"`
	Details          string `json:"details"`
}

// errorWire fixes the key order to Graph's: message, type, code, error_data,
// error_subcode, fbtrace_id.
type errorWire struct {
	Message   string     `json:"message"`
	Type      string     `json:"type"`
	Code      int        `json:"code"`
	ErrorData *errorData `json:"error_data,omitempty"`
	Subcode   int        `json:"error_subcode,omitempty"`
	FBTraceID string     `json:"fbtrace_id,omitempty"`
}

type errorBody struct {
	Error errorWire `json:"error"`
}

// MarshalJSON writes the Graph error body. error_data is left out when there
// are no details, as Graph does for plain Graph errors such as a bad token.
// json.Marshal will escape <, > and & in the result; encode with MarshalASCII
// to keep them literal as Graph does (both decode the same).
func (e *Error) MarshalJSON() ([]byte, error) {
	w := errorWire{
		Message:   e.Message,
		Type:      e.Type,
		Code:      e.Code,
		Subcode:   e.Subcode,
		FBTraceID: e.FBTraceID,
	}
	if e.Details != "" {
		w.ErrorData = &errorData{MessagingProduct: MessagingProduct, Details: e.Details}
	}
	return marshalNoHTML(errorBody{Error: w})
}

// UnmarshalJSON reads a Graph error body, so Tern's own tests and tools can
// parse what they wrote.
func (e *Error) UnmarshalJSON(b []byte) error {
	var body struct {
		Error *struct {
			errorWire
			ErrorData *errorData `json:"error_data"`
		} `json:"error"`
	}
	if err := json.Unmarshal(b, &body); err != nil {
		return fmt.Errorf("cloudapi: decoding error body: %w", err)
	}
	if body.Error == nil {
		return fmt.Errorf("cloudapi: decoding error body: %w", errNoErrorObject)
	}
	w := body.Error
	*e = Error{Message: w.Message, Type: w.Type, Code: w.Code, Subcode: w.Subcode, FBTraceID: w.FBTraceID}
	if w.ErrorData != nil {
		e.Details = w.ErrorData.Details
	}
	return nil
}

// withCause attaches the Go error behind a decoding failure.
func (e *Error) withCause(err error) *Error {
	e.cause = err
	return e
}

// ErrInvalidParameter is code 100: the body is malformed or names a value
// the endpoint does not take.
func ErrInvalidParameter(details string) *Error {
	return NewError(CodeInvalidParameter, "Invalid parameter", details)
}

// ErrRequiredParameter is code 131008: a required field is missing.
func ErrRequiredParameter(details string) *Error {
	return NewError(CodeRequiredParameter, "Required parameter is missing", details)
}

// ErrParameterValueNotValid is code 131009: a field is present but its value
// is out of range (too long, too many, duplicated).
func ErrParameterValueNotValid(details string) *Error {
	return NewError(CodeParameterValueNotValid, "Parameter value is not valid", details)
}

// ErrInvalidAccessToken is code 190 without error_data, the shape Graph uses
// for a token it cannot parse or that has expired or been revoked.
func ErrInvalidAccessToken(message string) *Error {
	if message == "" {
		message = "Invalid OAuth access token - Cannot parse access token"
	}
	return &Error{Message: message, Type: TypeOAuthException, Code: CodeAccessToken}
}

// ErrTooManyCalls is code 4: the app hit its API call rate limit.
func ErrTooManyCalls() *Error {
	return NewError(CodeTooManyCalls, "Application request limit reached", "")
}

// ErrRateLimitIssues is code 80007: the WhatsApp Business Account hit its
// rate limit.
func ErrRateLimitIssues() *Error {
	return NewError(CodeRateLimitIssues, "There have been too many calls to this WhatsApp Business account", "")
}

// ErrRateLimitHit is code 130429: the phone number's message throughput was
// reached.
func ErrRateLimitHit() *Error {
	return NewError(CodeRateLimitHit, "Rate limit hit",
		"Cloud API message throughput has been reached.")
}

// ErrUndeliverable is code 131026: the recipient cannot receive the message.
func ErrUndeliverable() *Error {
	return NewError(CodeUndeliverable, "Message Undeliverable", "Message Undeliverable.")
}

// ErrReEngagement is code 131047: free-form messages need the customer to
// have written within the last 24 hours; otherwise a template is required.
func ErrReEngagement() *Error {
	return NewError(CodeReEngagement, "Re-engagement message",
		"Message failed to send because more than 24 hours have passed since the customer last replied to this number.")
}

// ErrUnsupportedMessageType is code 131051.
func ErrUnsupportedMessageType() *Error {
	return NewError(CodeUnsupportedMessageType, "Unsupported message type",
		"Message type is not currently supported.")
}

// ErrMediaDownload is code 131052: media could not be fetched.
func ErrMediaDownload(details string) *Error {
	return NewError(CodeMediaDownload, "Media download error", details)
}

// ErrMediaUpload is code 131053: media could not be stored or processed.
func ErrMediaUpload(details string) *Error {
	return NewError(CodeMediaUpload, "Media upload error", details)
}

// ErrTemplateParamCount is code 132000: parameters do not match the
// template's placeholders.
func ErrTemplateParamCount(details string) *Error {
	return NewError(CodeTemplateParamCount, "Number of parameters does not match the expected number of params", details)
}

// ErrTemplateNotFound is code 132001: no approved template with that name
// exists in that language.
func ErrTemplateNotFound(details string) *Error {
	return NewError(CodeTemplateNotFound, "Template name does not exist in the translation", details)
}

// ErrPermissionDenied is code 10: the token lacks a permission.
func ErrPermissionDenied(details string) *Error {
	return NewError(CodePermissionDenied, "Application does not have permission for this action", details)
}

// ErrAPIPermission is code 200 (the 200–299 range): the token may not act
// on this object.
func ErrAPIPermission(details string) *Error {
	return NewError(CodeAPIPermission, "Permissions error", details)
}

// ErrParameterNotValid is code 33 as the WhatsApp table defines it: the
// business phone number in the path has been deleted.
func ErrParameterNotValid(details string) *Error {
	return NewError(CodeParameterNotValid, "Parameter value is not valid", details)
}

// ErrObjectNotFound is what Graph answers for an ID in the path that does not
// exist or that the token cannot see: code 100, subcode 33,
// GraphMethodException, HTTP 400 — not 404.
func ErrObjectNotFound(method, objectID string) *Error {
	return &Error{
		Message: fmt.Sprintf("Unsupported %s request. Object with ID '%s' does not exist, cannot be loaded due to missing permissions, or does not support this operation. Please read the Graph API documentation at https://developers.facebook.com/docs/graph-api",
			strings.ToLower(method), objectID),
		Type:    TypeGraphMethodException,
		Code:    CodeInvalidParameter,
		Subcode: SubcodeObjectNotFound,
	}
}
