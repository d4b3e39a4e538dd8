package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// DecodeError rewords an error of encoding/json about a task object for
// people: a field of the wrong type is named by its JSON name with the
// type it takes, not by the Go struct that holds it. Other errors keep
// their text, without the "json: " prefix; errors.Is and As still see the
// original.
func DecodeError(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		field := te.Field
		if i := strings.LastIndex(field, "."); i >= 0 && !strings.Contains(field[i:], "[") {
			field = field[i+1:]
		}
		if field == "" {
			return &decodeError{fmt.Sprintf("want a JSON object, not %s", te.Value), err}
		}
		return &decodeError{fmt.Sprintf("field %q: want %s, not %s", field, jsonType(te.Type.Kind().String()), te.Value), err}
	}
	return &decodeError{strings.TrimPrefix(err.Error(), "json: "), err}
}

// jsonType names a Go kind the way a JSON document's author would.
func jsonType(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64",
		"float32", "float64":
		return "a number"
	case "bool":
		return "true or false"
	case "map", "struct":
		return "an object"
	case "slice", "array":
		return "an array"
	}
	return "another type"
}

// decodeError is a reworded decoding error that unwraps to the original.
type decodeError struct {
	msg string
	err error
}

func (e *decodeError) Error() string { return e.msg }
func (e *decodeError) Unwrap() error { return e.err }
