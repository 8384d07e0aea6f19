package resource

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Sentinel errors of the resource API. The server maps them to HTTP status
// codes and the client maps status codes back, so errors.Is works on both
// sides of the wire.
var (
	ErrNotFound      = errors.New("not found")
	ErrAlreadyExists = errors.New("already exists")
	ErrConflict      = errors.New("conflict")
	ErrInvalid       = errors.New("invalid")
	ErrBadRequest    = errors.New("bad request")
	ErrExpired       = errors.New("resource version expired")
	ErrUnauthorized  = errors.New("unauthorized")
	ErrForbidden     = errors.New("forbidden")
	ErrTooLarge      = errors.New("request entity too large")
	ErrUnavailable   = errors.New("service unavailable")
)

// Cause is one reason a request failed, naming the field at fault.
type Cause struct {
	Field  string `json:"field,omitempty"`
	Reason string `json:"reason"`
}

// Status is the JSON body of every API error:
//
//	{"code":422,"reason":"Invalid","message":"...","details":[{"field":"spec.ports[0].port","reason":"must be 1-65535"}]}
//
// It is also the object of a watch ERROR event.
type Status struct {
	Code    int     `json:"code"`
	Reason  string  `json:"reason"`
	Message string  `json:"message"`
	Details []Cause `json:"details,omitempty"`
}

// Error implements error; a Status travels as an error on both sides.
func (s *Status) Error() string { return s.Message }

// Is makes errors.Is(status, ErrConflict) and friends true for the matching code.
func (s *Status) Is(target error) bool { return sentinelForCode(s.Code, s.Reason) == target }

var codes = []struct {
	err    error
	code   int
	reason string
}{
	{ErrNotFound, http.StatusNotFound, "NotFound"},
	{ErrAlreadyExists, http.StatusConflict, "AlreadyExists"},
	{ErrConflict, http.StatusConflict, "Conflict"},
	{ErrInvalid, http.StatusUnprocessableEntity, "Invalid"},
	{ErrBadRequest, http.StatusBadRequest, "BadRequest"},
	{ErrExpired, http.StatusGone, "Expired"},
	{ErrUnauthorized, http.StatusUnauthorized, "Unauthorized"},
	{ErrForbidden, http.StatusForbidden, "Forbidden"},
	{ErrTooLarge, http.StatusRequestEntityTooLarge, "RequestEntityTooLarge"},
	{ErrUnavailable, http.StatusServiceUnavailable, "ServiceUnavailable"},
}

func sentinelForCode(code int, reason string) error {
	for _, c := range codes {
		if c.code == code && (c.reason == reason || code != http.StatusConflict) {
			return c.err
		}
	}
	return nil
}

// StatusOf turns any error into the Status to send. Errors that wrap none of
// the sentinels are internal: their text is not shown to the client.
func StatusOf(err error) *Status {
	var s *Status
	if errors.As(err, &s) {
		return s
	}
	for _, c := range codes {
		if errors.Is(err, c.err) {
			st := &Status{Code: c.code, Reason: c.reason, Message: err.Error()}
			var inv *InvalidError
			if errors.As(err, &inv) {
				st.Details = inv.Causes()
			}
			return st
		}
	}
	return &Status{Code: http.StatusInternalServerError, Reason: "InternalError", Message: "internal error"}
}

// InvalidError says an object failed validation; it wraps ErrInvalid.
type InvalidError struct {
	Kind string // e.g. "Service.sluice.io"
	Name string
	Errs field.ErrorList
}

// NewInvalid returns the validation error for an object of kind k.
func NewInvalid(k *Kind, name string, errs field.ErrorList) *InvalidError {
	return &InvalidError{Kind: k.String(), Name: name, Errs: errs}
}

func (e *InvalidError) Error() string {
	parts := make([]string, 0, len(e.Errs))
	for _, c := range e.Causes() {
		parts = append(parts, c.Field+": "+c.Reason)
	}
	return fmt.Sprintf("%s %q is invalid: %s", e.Kind, e.Name, strings.Join(parts, "; "))
}

func (e *InvalidError) Unwrap() error { return ErrInvalid }

// Causes lists the failing fields with a reason each.
func (e *InvalidError) Causes() []Cause {
	causes := make([]Cause, 0, len(e.Errs))
	for _, fe := range e.Errs {
		causes = append(causes, Cause{Field: fe.Field, Reason: reasonOf(fe)})
	}
	return causes
}

func reasonOf(fe *field.Error) string {
	switch {
	case fe.Type == field.ErrorTypeNotSupported:
		return fmt.Sprintf("unsupported value %q: %s", fmt.Sprint(fe.BadValue), strings.Replace(fe.Detail, "supported values", "must be one of", 1))
	case fe.Detail != "":
		return fe.Detail
	case fe.Type == field.ErrorTypeRequired:
		return "is required"
	case fe.Type == field.ErrorTypeDuplicate:
		return fmt.Sprintf("duplicate value %v", fe.BadValue)
	default:
		return strings.ToLower(fe.Type.String())
	}
}
