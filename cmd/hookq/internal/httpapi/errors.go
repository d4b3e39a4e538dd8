package httpapi

import (
	"context"
	"errors"
	"net/http"

	"github.com/hookq/hookq/queue"
)

// Error codes sent in the "code" field of an error reply, next to the
// human-readable "error". Clients map them back to the queue's sentinel
// errors, so that errors.Is works across the wire.
const (
	CodeInvalid  = "invalid"   // the request or the task is malformed (400)
	CodeNotFound = "not_found" // no such task or route (404)
	CodeFinal    = "final"     // the task has already finished (409)
	CodeNotFinal = "not_final" // the task has not finished (409)
	CodeKeyHeld  = "key_held"  // another task holds the idempotency key (409)
	CodeForeign  = "forbidden" // a cross-site or wrongly addressed request (403)
	CodeTooLarge = "too_large" // the request body is over the limit (413)
	CodeClosed   = "closed"    // the queue is closing or closed (503)
	CodeNoSpace  = "no_space"  // the store's file system is full (507)
	CodeInternal = "internal"  // anything else (500)
	codeMethod   = "method_not_allowed"
)

// errorReply is the JSON body of every error reply.
type errorReply struct {
	Error string `json:"error"`
	Code  string `json:"code,omitempty"`
}

// classify returns the HTTP status and code for an error returned by the
// queue.
func classify(err error) (int, string) {
	switch {
	case errors.Is(err, queue.ErrInvalid):
		return http.StatusBadRequest, CodeInvalid
	case errors.Is(err, queue.ErrNotFound):
		return http.StatusNotFound, CodeNotFound
	case errors.Is(err, queue.ErrFinal):
		return http.StatusConflict, CodeFinal
	case errors.Is(err, queue.ErrNotFinal):
		return http.StatusConflict, CodeNotFinal
	case errors.Is(err, queue.ErrKeyHeld):
		return http.StatusConflict, CodeKeyHeld
	case errors.Is(err, queue.ErrNoSpace):
		return http.StatusInsufficientStorage, CodeNoSpace
	case errors.Is(err, queue.ErrClosed), errors.Is(err, context.Canceled):
		return http.StatusServiceUnavailable, CodeClosed
	default:
		return http.StatusInternalServerError, CodeInternal
	}
}

// Error is an error reply from a hookq server. It unwraps to the queue's
// sentinel error that matches its code (queue.ErrNotFound for not_found,
// and so on), or to nothing for codes without one.
type Error struct {
	// StatusCode is the HTTP status of the reply.
	StatusCode int
	// Code is the machine-readable code, such as "not_found"; it may be
	// empty when the reply did not come from hookq's handler.
	Code string
	// Message is the server's description of the error.
	Message string
}

// Error returns the server's message.
func (e *Error) Error() string { return e.Message }

// Unwrap returns the queue sentinel error matching the reply, or nil.
func (e *Error) Unwrap() error {
	switch e.Code {
	case CodeInvalid:
		return queue.ErrInvalid
	case CodeNotFound:
		return queue.ErrNotFound
	case CodeFinal:
		return queue.ErrFinal
	case CodeNotFinal:
		return queue.ErrNotFinal
	case CodeKeyHeld:
		return queue.ErrKeyHeld
	case CodeClosed:
		return queue.ErrClosed
	case CodeNoSpace:
		return queue.ErrNoSpace
	case "":
		// Not from our handler (a proxy, say): go by the status alone.
		switch e.StatusCode {
		case http.StatusBadRequest:
			return queue.ErrInvalid
		case http.StatusNotFound:
			return queue.ErrNotFound
		case http.StatusServiceUnavailable:
			return queue.ErrClosed
		}
	}
	return nil
}
