package llm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/anthropics/anthropic-sdk-go"
	"github.com/openai/openai-go/v3"

	"github.com/lgx-run/lgx/internal/failure"
	"github.com/lgx-run/lgx/internal/retryafter"
)

// Error kinds, of those internal/failure declares, so that the caller can
// convert them to nodes.Kind directly.
const (
	ErrStatus    = failure.Status    // the API answered with a non-2xx status
	ErrNetwork   = failure.Network   // connection failed or dropped (incl. a stream cut mid-way)
	ErrTimeout   = failure.Timeout   // the context's deadline passed
	ErrCancelled = failure.Cancelled // the context was cancelled
	ErrProvider  = failure.Provider  // the provider answered something unusable
)

// Error is a failed completion. Its text never contains the API key.
type Error struct {
	Kind       string
	Status     int           // HTTP status for ErrStatus
	RetryAfter time.Duration // from Retry-After (or retry-after-ms); 0 = none
	msg        string
	err        error
}

func (e *Error) Error() string { return e.msg }

// Unwrap returns the underlying SDK or transport error.
func (e *Error) Unwrap() error { return e.err }

// mapError classifies err from provider kind's SDK. The API key is
// scrubbed from the message.
func mapError(provider, apiKey string, err error) error {
	if err == nil {
		return nil
	}
	e := &Error{Kind: ErrProvider, err: err}
	var oe *openai.Error
	var ae *anthropic.Error
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		e.Kind = ErrTimeout
		e.msg = fmt.Sprintf("%s: request timed out", provider)
	case errors.Is(err, context.Canceled):
		e.Kind = ErrCancelled
		e.msg = fmt.Sprintf("%s: request cancelled", provider)
	case errors.As(err, &oe):
		e.Kind, e.Status = ErrStatus, oe.StatusCode
		e.RetryAfter = retryAfter(oe.Response)
		e.msg = statusMessage(provider, oe.StatusCode, oe.Message)
	case errors.As(err, &ae) && ae.StatusCode/100 == 2:
		// An `event: error` inside a 200 stream: classify by its type, as
		// the HTTP status Anthropic uses for it elsewhere.
		typ, detail := anthropicErrorBody(ae.RawJSON())
		e.msg = fmt.Sprintf("%s: error while streaming: %s: %s", provider, typ, detail)
		if st := anthropicStreamStatus[typ]; st != 0 {
			e.Kind, e.Status = ErrStatus, st
		}
	case errors.As(err, &ae):
		e.Kind, e.Status = ErrStatus, ae.StatusCode
		e.RetryAfter = retryAfter(ae.Response)
		_, detail := anthropicErrorBody(ae.RawJSON())
		e.msg = statusMessage(provider, ae.StatusCode, detail)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, errTruncated):
		e.Kind = ErrNetwork
		e.msg = fmt.Sprintf("%s: response cut short: %v", provider, err)
	case errors.As(err, &ne) && ne.Timeout():
		e.Kind = ErrTimeout
		e.msg = fmt.Sprintf("%s: %v", provider, err)
	case errors.As(err, &ne), isConnError(err):
		e.Kind = ErrNetwork
		e.msg = fmt.Sprintf("%s: %v", provider, err)
	default:
		e.msg = fmt.Sprintf("%s: %v", provider, err)
	}
	if apiKey != "" {
		e.msg = strings.ReplaceAll(e.msg, apiKey, "***")
	}
	return e
}

// isConnError reports transport failures that do not implement net.Error.
func isConnError(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed)
}

func statusMessage(provider string, status int, detail string) string {
	msg := fmt.Sprintf("%s: HTTP %d %s", provider, status, http.StatusText(status))
	if detail != "" {
		msg += ": " + detail
	}
	return msg
}

// anthropicErrorBody extracts error.type and error.message from an
// Anthropic error body.
func anthropicErrorBody(raw string) (typ, msg string) {
	var body struct {
		Error struct {
			Type    string `json:"type"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := jsonUnmarshalString(raw, &body); err != nil {
		return "", ""
	}
	return body.Error.Type, body.Error.Message
}

// anthropicStreamStatus maps in-stream error types to the HTTP status the
// API gives the same condition, so that retry policies treat them alike.
var anthropicStreamStatus = map[string]int{
	"overloaded_error": 529,
	"api_error":        500,
	"rate_limit_error": 429,
	"timeout_error":    504,
}

// retryAfter reads retry-after-ms (OpenAI) or Retry-After (delta-seconds or
// an HTTP date) from a response.
func retryAfter(resp *http.Response) time.Duration {
	if resp == nil {
		return 0
	}
	if ms := resp.Header.Get("Retry-After-Ms"); ms != "" {
		if f, err := strconv.ParseFloat(ms, 64); err == nil && f > 0 {
			return time.Duration(f * float64(time.Millisecond))
		}
	}
	return ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
}

// ParseRetryAfter parses a Retry-After value (delta-seconds or an
// HTTP-date); 0 when absent, malformed or in the past.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	d, _ := retryafter.Parse(v, now)
	return d
}

// errTruncated reports a stream that ended without its final event.
var errTruncated = errors.New("stream ended before the response was complete")
