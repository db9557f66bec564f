package runner

import (
	"errors"
	"regexp"
	"strings"

	"github.com/expr-lang/expr/file"

	"github.com/lgx-run/lgx/internal/value"
	"github.com/lgx-run/lgx/nodes"
)

// exprRunError is an expression's run-time failure in lgx's words: expr's
// message with Go's type names replaced by the state types' ("null" for
// "<nil>"), the failing part of the expression quoted, and no source
// snippet (the error already names the file, line and the whole
// expression; a multi-line caret drawing breaks the one-line progress
// view). It unwraps to expr's error, whose cause (a deadline, a limit)
// callers branch on.
type exprRunError struct {
	msg string
	fe  *file.Error
}

func (e *exprRunError) Error() string { return e.msg }
func (e *exprRunError) Unwrap() error { return e.fe }

// goConversion is expr's message for a value of the wrong type given to
// an operation or builtin that needs another: the Go runtime's wording of
// a failed type assertion.
var goConversion = regexp.MustCompile(`^interface conversion: interface \{\} is (.+), not (.+)$`)

// runtimeError rewrites err, an error from running the expression src, as
// an exprRunError; any other error is returned as it is.
func runtimeError(src string, err error) error {
	var fe *file.Error
	if !errors.As(err, &fe) || nodesKindSet(err) {
		return err
	}
	msg := fe.Message
	if m := goConversion.FindStringSubmatch(msg); m != nil {
		msg = "expected " + m[2] + ", got " + m[1]
	}
	msg = value.GoTypeNames(msg)
	if part := exprPart(src, fe.Location); part != "" && !strings.Contains(msg, part) {
		msg = part + ": " + msg
	}
	return &exprRunError{msg: msg, fe: fe}
}

// nodesKindSet reports whether err already carries a failure kind (a
// limit, a timeout) whose message is lgx's own.
func nodesKindSet(err error) bool {
	var re *exprRunError
	return errors.As(err, &re) || exprKind(err) != nodes.KindExpr
}

// exprPart is the name of the function whose call loc spans in src, if
// it is one: expr locates a failed call by its name, an operator by its
// token ("+", "["), which says nothing quoted.
func exprPart(src string, loc file.Location) string {
	r := []rune(src)
	if loc.From < 0 || loc.To > len(r) || loc.From >= loc.To {
		return ""
	}
	part := string(r[loc.From:loc.To])
	if !identifier.MatchString(part) || part == strings.TrimSpace(src) {
		return ""
	}
	return part
}

var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
