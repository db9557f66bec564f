package nodes

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/lgx-run/lgx/internal/retryafter"
	"github.com/lgx-run/lgx/internal/value"
)

// DefaultMaxBytes is http_fetch's default `max_bytes` (10 MiB).
const DefaultMaxBytes = 10 << 20

// fetchExcerptBytes bounds the part of a 4xx/5xx body quoted in its error.
const fetchExcerptBytes = 200

func init() { Register(httpFetch{}) }

// httpFetch is the `http_fetch` type (SPEC §5.1): one HTTP request per
// attempt through the run's shared client.
type httpFetch struct{}

func (httpFetch) Name() string { return "http_fetch" }

func (httpFetch) Doc() Doc {
	return Doc{
		Summary: "Sends one HTTP request and returns the response; a status outside `expect` fails the node (kind status; 429 and 5xx are retried by the default policy).",
		With: []Field{
			{Name: "url", Type: "string", Required: true, Check: checkFetchURL,
				Doc: "Absolute http:// or https:// URL."},
			{Name: "method", Type: "string", Default: "GET", Check: checkFetchMethod,
				Doc: "HTTP method; upper-cased (post → POST)."},
			{Name: "headers", Type: "object", Default: "{}",
				Doc: "Request headers: name → string, number, boolean or list of them (repeated header). `Host` sets the Host header."},
			{Name: "query", Type: "object", Default: "{}",
				Doc: "Query parameters merged into the URL's query: name → scalar or list (repeated parameter); a name given here replaces the URL's own values; null values are skipped."},
			{Name: "body", Type: "string",
				Doc: "Request body, sent as is."},
			{Name: "json", Type: "any",
				Doc: "Value sent as a JSON body with `Content-Type: application/json` (unless `headers` sets one)."},
			{Name: "timeout", Type: "duration",
				Doc: "Per-attempt deadline (e.g. 10s), within the node's own `timeout`; expiry fails with kind timeout."},
			{Name: "max_bytes", Type: "bytes", Default: "10MiB",
				Doc: "Most body bytes read (integer or size like 512KB, 10MiB); a longer body is cut at exactly this size and `truncated` is true."},
			{Name: "follow_redirects", Type: "boolean", Default: "true",
				Doc: "Follow up to 10 redirects; false returns the 3xx response itself (then subject to `expect`)."},
			{Name: "expect", Type: "any", Default: "2xx", Check: checkFetchExpect,
				Doc: "Accepted statuses: a status (404), a class (\"2xx\") or a list of them ([200, \"3xx\"])."},
			{Name: "idempotency_key", Type: "any", Default: "auto",
				Doc: "`auto`: for methods other than GET/HEAD send `Idempotency-Key` `lgx-RUN-PATH`, from the run id and the invocation's path (the same across retries and resumes, different for each loop visit, item, tool call and subgraph child); true is auto; any other string is sent as given, for any method; \"\" or false sends none. An `Idempotency-Key` in `headers` wins."},
		},
		Result: []Field{
			{Name: "url", Type: "string", Doc: "Final URL, after redirects."},
			{Name: "status", Type: "integer", Doc: "Response status code."},
			{Name: "headers", Type: "object", Doc: "Response headers: canonical name → value, repeated values joined with \", \"."},
			{Name: "body", Type: "string", Doc: "Response body as text (at most max_bytes); invalid UTF-8 bytes are replaced by U+FFFD."},
			{Name: "json", Type: "any", Doc: "Parsed body when the Content-Type is JSON (application/json or *+json), the body parses and is not truncated; else null. Integral numbers become integers, others numbers."},
			{Name: "truncated", Type: "boolean", Doc: "True when the body was longer than max_bytes and was cut."},
			{Name: "duration_ms", Type: "integer", Doc: "Time from sending the request to the end of the body, in milliseconds."},
		},
		OneOf: []OneOf{{Fields: []string{"body", "json"}}},
	}
}

// fetchRequest is a `with` block checked and converted.
type fetchRequest struct {
	method   string
	url      *url.URL
	header   http.Header
	host     string // from a Host header, "" = the URL's
	body     []byte
	hasBody  bool
	isJSON   bool
	timeout  time.Duration
	maxBytes int64
	follow   bool
	expect   []statusMatch
	idemKey  string          // "auto", "" (none) or a literal key
	fields   map[string]bool // result fields to build; nil = all
}

// fetchDefaultExpect is `expect: 2xx`; shared, never modified.
var fetchDefaultExpect = []statusMatch{{class: 2}}

// statusMatch accepts one status (code) or one class (class*100..+99).
type statusMatch struct {
	code  int
	class int
}

func (m statusMatch) ok(status int) bool {
	if m.class != 0 {
		return status/100 == m.class
	}
	return status == m.code
}

// Capabilities: one request an attempt (Capabilities.OneRequest).
func (httpFetch) Capabilities() Capabilities { return Capabilities{OneRequest: true} }

func (httpFetch) Run(ctx context.Context, inv *Invocation) (any, error) {
	var req fetchRequest // on the stack: one allocation less per request
	if err := req.parse(inv.With); err != nil {
		return nil, err
	}
	req.fields = inv.ResultFields
	return req.do(ctx, inv.Host)
}

// parseFetch checks a resolved `with` block and applies the defaults. A null
// value counts as absent, so that an expression can leave a field out.
func parseFetch(with map[string]any) (*fetchRequest, error) {
	r := new(fetchRequest)
	if err := r.parse(with); err != nil {
		return nil, err
	}
	return r, nil
}

// parse sets r from a resolved `with` block.
func (r *fetchRequest) parse(with map[string]any) error {
	// One pass over the block, rather than a lookup per field: eleven
	// lookups of a map that usually holds one or two keys were a third
	// of parsing a request (BenchmarkHTTPThroughput's profile).
	var f [numFetchFields]any
	for k, v := range with {
		i := fetchFieldIndex(k)
		if i < 0 {
			return Errorf(KindInput, "http_fetch: unknown field %q in with", k)
		}
		f[i] = v
	}
	*r = fetchRequest{method: http.MethodGet, maxBytes: DefaultMaxBytes, follow: true,
		expect: fetchDefaultExpect, idemKey: "auto"}

	rawURL, ok := f[fetchURLField].(string)
	if !ok || strings.TrimSpace(rawURL) == "" {
		if f[fetchURLField] == nil {
			return Errorf(KindInput, "http_fetch: with.url is required")
		}
		return Errorf(KindInput, "http_fetch: with.url must be a string, got %s", fetchTypeName(f[fetchURLField]))
	}
	u, problem := fetchURL(rawURL)
	if problem != "" {
		return Errorf(KindInput, "http_fetch: with.url %s", problem)
	}
	r.url = u

	if v := f[fetchMethod]; v != nil {
		if problem := checkFetchMethod(v); problem != "" {
			return Errorf(KindInput, "http_fetch: with.method %s", problem)
		}
		r.method = strings.ToUpper(v.(string))
	}

	if err := r.parseHeaders(f[fetchHeaders]); err != nil {
		return err
	}
	if err := r.parseQuery(f[fetchQuery]); err != nil {
		return err
	}

	if f[fetchBody] != nil && f[fetchJSON] != nil {
		return Errorf(KindInput, "http_fetch: with.body and with.json are exclusive; give one")
	}
	if v := f[fetchBody]; v != nil {
		s, ok := v.(string)
		if !ok {
			return Errorf(KindInput, "http_fetch: with.body must be a string, got %s (use json: for structured values)", fetchTypeName(v))
		}
		r.body, r.hasBody = []byte(s), true
	}
	if v := f[fetchJSON]; v != nil {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v); err != nil {
			return Errorf(KindInput, "http_fetch: with.json: %w", err)
		}
		r.body, r.hasBody, r.isJSON = bytes.TrimSuffix(buf.Bytes(), []byte("\n")), true, true
		if r.header.Get("Content-Type") == "" {
			if r.header == nil {
				r.header = make(http.Header, 1)
			}
			r.header.Set("Content-Type", "application/json")
		}
	}

	if v := f[fetchTimeout]; v != nil {
		d, err := fetchDuration(v)
		if err != nil {
			return Errorf(KindInput, "http_fetch: with.timeout: %w", err)
		}
		r.timeout = d
	}
	if v := f[fetchMaxBytes]; v != nil {
		n, err := fetchByteSize(v)
		if err != nil {
			return Errorf(KindInput, "http_fetch: with.max_bytes: %w", err)
		}
		r.maxBytes = n
	}
	if v := f[fetchFollow]; v != nil {
		b, ok := v.(bool)
		if !ok {
			return Errorf(KindInput, "http_fetch: with.follow_redirects must be a boolean, got %s", fetchTypeName(v))
		}
		r.follow = b
	}
	if v := f[fetchExpect]; v != nil {
		e, err := parseFetchExpect(v)
		if err != nil {
			return Errorf(KindInput, "http_fetch: with.expect: %w", err)
		}
		r.expect = e
	}
	switch v := f[fetchIdemKey].(type) {
	case nil:
	case bool:
		if !v {
			r.idemKey = ""
		}
	case string:
		if strings.ContainsAny(v, "\r\n\x00") {
			return Errorf(KindInput, "http_fetch: with.idempotency_key contains a line break")
		}
		r.idemKey = v
	default:
		return Errorf(KindInput, "http_fetch: with.idempotency_key must be a string or false, got %s", fetchTypeName(v))
	}
	return nil
}

// fetchURL parses a `url`, or says what is wrong with it.
func fetchURL(raw string) (*url.URL, string) {
	u, err := url.Parse(strings.TrimSpace(raw))
	switch {
	case err != nil:
		return nil, "is not a valid URL: " + urlProblem(err)
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Sprintf("%q: want an absolute http:// or https:// URL", u.Redacted())
	case u.Host == "":
		return nil, fmt.Sprintf("%q has no host", u.Redacted())
	}
	return u, ""
}

// checkFetchURL is the `url` field's literal check.
func checkFetchURL(v any) string {
	s, ok := v.(string)
	if !ok {
		return ""
	}
	_, problem := fetchURL(s)
	return problem
}

// checkFetchMethod is the `method` field's check: an HTTP token.
func checkFetchMethod(v any) string {
	m, ok := v.(string)
	switch {
	case ok && isHTTPToken(m):
		return ""
	case ok:
		return fmt.Sprintf("%q is not an HTTP method", m)
	}
	return fmt.Sprintf("%v is not an HTTP method", v)
}

// checkFetchExpect is the `expect` field's literal check.
func checkFetchExpect(v any) string {
	if _, err := parseFetchExpect(v); err != nil {
		return err.Error()
	}
	return ""
}

// quotedPart matches a quoted piece of a URL in net/url's error messages
// (`invalid URL escape "%ue"`, `invalid port ":x" after host`).
var quotedPart = regexp.MustCompile(` *"[^"]*"`)

// urlProblem says what is wrong with a URL that did not parse without
// quoting any of it: a URL may hold a secret, and a quoted fragment of one
// is not something redaction, which replaces whole values, can find.
func urlProblem(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // its text repeats the whole URL
	}
	msg := strings.TrimPrefix(err.Error(), "net/url: ")
	return quotedPart.ReplaceAllString(msg, "")
}

// The fields of a `with` block, as parse gathers them.
const (
	fetchURLField = iota
	fetchMethod
	fetchHeaders
	fetchQuery
	fetchBody
	fetchJSON
	fetchTimeout
	fetchMaxBytes
	fetchFollow
	fetchExpect
	fetchIdemKey
	numFetchFields
)

// fetchFieldIndex is a `with` field's index, -1 for an unknown field.
func fetchFieldIndex(k string) int {
	switch k {
	case "url":
		return fetchURLField
	case "method":
		return fetchMethod
	case "headers":
		return fetchHeaders
	case "query":
		return fetchQuery
	case "body":
		return fetchBody
	case "json":
		return fetchJSON
	case "timeout":
		return fetchTimeout
	case "max_bytes":
		return fetchMaxBytes
	case "follow_redirects":
		return fetchFollow
	case "expect":
		return fetchExpect
	case "idempotency_key":
		return fetchIdemKey
	}
	return -1
}

// parseHeaders sets r.header, which stays nil when there are none.
func (r *fetchRequest) parseHeaders(v any) error {
	if v == nil {
		return nil
	}
	m, ok := fetchObject(v)
	if !ok {
		return Errorf(KindInput, "http_fetch: with.headers must be an object, got %s", fetchTypeName(v))
	}
	r.header = make(http.Header, len(m))
	for name, val := range m {
		if !isHTTPToken(name) {
			return Errorf(KindInput, "http_fetch: with.headers: %q is not a valid header name", name)
		}
		vals, err := fetchScalarList(val)
		if err != nil {
			return Errorf(KindInput, "http_fetch: with.headers.%s: %w", name, err)
		}
		for _, s := range vals {
			if strings.ContainsAny(s, "\r\n\x00") {
				return Errorf(KindInput, "http_fetch: with.headers.%s: value contains a line break", name)
			}
			if http.CanonicalHeaderKey(name) == "Host" {
				r.host = s
				continue
			}
			r.header.Add(name, s)
		}
	}
	return nil
}

func (r *fetchRequest) parseQuery(v any) error {
	if v == nil {
		return nil
	}
	m, ok := fetchObject(v)
	if !ok {
		return Errorf(KindInput, "http_fetch: with.query must be an object, got %s", fetchTypeName(v))
	}
	if len(m) == 0 {
		return nil
	}
	q := r.url.Query()
	for name, val := range m {
		vals, err := fetchScalarList(val)
		if err != nil {
			return Errorf(KindInput, "http_fetch: with.query.%s: %w", name, err)
		}
		if val == nil {
			continue
		}
		q[name] = vals
	}
	r.url.RawQuery = q.Encode()
	return nil
}

// do sends the request and builds the result, classifying failures.
func (r *fetchRequest) do(parent context.Context, host Host) (any, error) {
	client := fetchDefaultHTTPClient()
	if host != nil {
		if c := host.HTTPClient(); c != nil {
			client = c
		}
	}
	client = WithRedirectPolicy(client, r.follow)

	ctx := parent
	if r.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(parent, r.timeout)
		defer cancel()
	}

	var body io.Reader
	if r.hasBody {
		body = bytes.NewReader(r.body)
	}
	// The URL is already parsed: an empty one here spares formatting and
	// parsing it again per request (NewRequest would); Host is what
	// NewRequest derives from it.
	req, err := http.NewRequestWithContext(ctx, r.method, "", body)
	if err != nil {
		return nil, Errorf(KindInput, "%s %s: %w", r.method, r.url.Redacted(), err)
	}
	req.URL, req.Host = r.url, strings.TrimSuffix(r.url.Host, ":")
	req.Header = r.requestHeader(client, host)
	if r.host != "" {
		req.Host = r.host
	}

	var start time.Time
	if r.wants("duration_ms") { // two clock reads per request otherwise
		start = time.Now()
	}
	resp, err := client.Do(req)
	if err != nil {
		if resp != nil && (errors.Is(err, ErrTooManyRedirects) || errors.Is(err, ErrCrossOriginBody)) {
			return nil, &Error{Kind: KindStatus, Status: resp.StatusCode,
				Err: fmt.Errorf("%s %s: %w", r.method, r.url.Redacted(), unwrapFetchURLError(err))}
		}
		return nil, r.transportError(parent, ctx, err)
	}
	defer resp.Body.Close()

	data, truncated, err := readBodyAtMost(resp.Body, r.maxBytes, resp.ContentLength)
	if err != nil {
		return nil, r.transportError(parent, ctx, fmt.Errorf("reading body: %w", err))
	}
	var elapsed time.Duration
	if !start.IsZero() {
		elapsed = time.Since(start)
	}

	if !r.statusOK(resp.StatusCode) {
		return nil, r.statusError(resp, data)
	}

	return r.result(resp, data, truncated, elapsed), nil
}

// wants reports whether the workflow reads a result field.
func (r *fetchRequest) wants(field string) bool { return r.fields == nil || r.fields[field] }

// result builds the node's result. Fields the workflow never reads
// (r.fields, from Invocation.ResultFields) are left out: the body as a
// string, the headers map and the parsed JSON are most of a small
// request's allocations.
func (r *fetchRequest) result(resp *http.Response, data []byte, truncated bool, elapsed time.Duration) map[string]any {
	want := r.wants
	res := map[string]any{
		"status":    resp.StatusCode,
		"truncated": truncated,
	}
	if want("duration_ms") {
		res["duration_ms"] = int(elapsed.Milliseconds())
	}
	if want("url") {
		res["url"] = resp.Request.URL.String()
	}
	if want("body") {
		// The body buffer is never written again: the string shares it.
		text := unsafe.String(unsafe.SliceData(data), len(data))
		if !utf8.ValidString(text) {
			text = strings.ToValidUTF8(text, "\uFFFD")
		}
		res["body"] = text
	}
	if want("json") {
		var parsed any
		if !truncated && isJSONContentType(resp.Header.Get("Content-Type")) {
			if v, err := value.DecodeJSON(data); err == nil {
				parsed = v
			}
		}
		res["json"] = parsed
	}
	if want("headers") {
		headers := make(map[string]any, len(resp.Header))
		for k, vs := range resp.Header {
			headers[k] = strings.Join(vs, ", ")
		}
		res["headers"] = headers
	}
	return res
}

// requestHeader completes the request's header with Idempotency-Key and
// User-Agent. A request without headers of its own through the shared
// client gets the transport's shared User-Agent-only header: neither lgx
// nor net/http writes to a request's header once it is sent, and the
// common GET then allocates no header map.
func (r *fetchRequest) requestHeader(client *http.Client, host Host) http.Header {
	var idem string
	switch {
	case r.header.Get("Idempotency-Key") != "":
	case r.idemKey == "auto":
		if r.method != http.MethodGet && r.method != http.MethodHead && host != nil {
			idem = host.IdempotencyKey()
		}
	default:
		idem = r.idemKey
	}
	ua, lgxClient := client.Transport.(*userAgentTransport)
	if len(r.header) == 0 && idem == "" && lgxClient {
		return ua.header
	}
	h := r.header
	if h == nil {
		h = make(http.Header, 2)
	}
	if idem != "" {
		h.Set("Idempotency-Key", idem)
	}
	if lgxClient && h["User-Agent"] == nil {
		h["User-Agent"] = []string{ua.ua} // spares the transport a header copy
	}
	return h
}

func (r *fetchRequest) statusOK(status int) bool {
	for _, m := range r.expect {
		if m.ok(status) {
			return true
		}
	}
	return false
}

// statusError reports a status outside `expect`, with Retry-After and, for
// 4xx/5xx, a short excerpt of the body (never the request's headers).
func (r *fetchRequest) statusError(resp *http.Response, body []byte) *Error {
	msg := fmt.Sprintf("%s %s: status %d", r.method, r.url.Redacted(), resp.StatusCode)
	if t := http.StatusText(resp.StatusCode); t != "" {
		msg += " " + t
	}
	if resp.StatusCode >= 400 {
		if ex := bodyExcerpt(body, fetchExcerptBytes); ex != "" {
			msg += ": " + ex
		}
	}
	e := &Error{Kind: KindStatus, Status: resp.StatusCode, Err: errors.New(msg)}
	if d, ok := retryafter.Parse(resp.Header.Get("Retry-After"), time.Now()); ok {
		e.RetryAfter = d
	}
	return e
}

// transportError classifies a failure to get or read a response: the run
// being cancelled, a deadline, or the network.
func (r *fetchRequest) transportError(parent, ctx context.Context, err error) *Error {
	err = unwrapFetchURLError(err)
	where := r.method + " " + r.url.Redacted()
	switch {
	case parent.Err() != nil && errors.Is(context.Cause(parent), context.DeadlineExceeded):
		// The attempt's deadline: context.WithTimeout's, or the runner's
		// timer, which cancels with this cause. Name the timeout when the
		// cause carries it (net/http may return the cause itself, which
		// already reads "timed out after 2s").
		var tc *TimeoutCause
		if errors.As(err, &tc) {
			return &Error{Kind: KindTimeout, Err: fmt.Errorf("%s: %w", where, err)}
		}
		if d := TimedOutAfter(parent); d > 0 {
			return &Error{Kind: KindTimeout, Err: fmt.Errorf("%s: timed out after %s: %w", where, d, err)}
		}
		return &Error{Kind: KindTimeout, Err: fmt.Errorf("%s: timed out: %w", where, err)}
	case errors.Is(parent.Err(), context.Canceled):
		return &Error{Kind: KindCancelled, Err: fmt.Errorf("%s: cancelled: %w", where, err)}
	case ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded):
		if r.timeout > 0 && parent.Err() == nil {
			return &Error{Kind: KindTimeout, Err: fmt.Errorf("%s: timed out after %s: %w", where, r.timeout, err)}
		}
		return &Error{Kind: KindTimeout, Err: fmt.Errorf("%s: timed out: %w", where, err)}
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return &Error{Kind: KindTimeout, Err: fmt.Errorf("%s: %w", where, err)}
	}
	return &Error{Kind: KindNetwork, Err: fmt.Errorf("%s: %w", where, err)}
}

// unwrapFetchURLError drops net/http's *url.Error wrapper, whose text repeats
// the method and URL (unredacted) that lgx's own messages already name.
func unwrapFetchURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// readBodyAtMost reads up to max bytes of r; truncated reports that r had more.
// It never buffers more than max bytes, whatever the server sends. With a
// Content-Length (net/http never reads past it) the body is read into one
// buffer of exactly min(Content-Length, max) bytes, whose string the
// result shares: a response costs its size once, not the growth copies
// and conversions of a buffer grown from a guess. Without one, the buffer
// grows by a quarter at a time (at most max), so its slack and the copy a
// move makes stay near the body's size.
func readBodyAtMost(r io.Reader, max, contentLength int64) (data []byte, truncated bool, err error) {
	max = min(max, math.MaxInt64-1)
	size := int64(512)
	if contentLength >= 0 {
		size = contentLength
	}
	buf := make([]byte, 0, min(size, max))
	for {
		if len(buf) == cap(buf) {
			// Full: one more byte tells an end from a longer body.
			var probe [1]byte
			n, err := io.ReadFull(r, probe[:])
			if n == 0 {
				if err == io.EOF {
					return buf, false, nil
				}
				return nil, false, err
			}
			if int64(len(buf)) >= max {
				return buf, true, nil
			}
			grown := min(max, int64(cap(buf))+int64(cap(buf))/4+512)
			buf = append(make([]byte, 0, grown), buf...)
			buf = append(buf, probe[0])
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, false, nil
		}
		if err != nil {
			return nil, false, err
		}
	}
}

// bodyExcerpt returns the start of body as one line of at most n bytes of
// valid UTF-8 (whitespace runs collapsed), "…" marking a cut, for error
// messages.
func bodyExcerpt(body []byte, n int) string {
	if len(body) > 4*n {
		body = body[:4*n]
	}
	s := strings.Join(strings.Fields(strings.ToValidUTF8(string(body), "\uFFFD")), " ")
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// isJSONContentType reports application/json and any */*+json media type.
func isJSONContentType(ct string) bool {
	mt, _, _ := strings.Cut(ct, ";")
	mt = strings.TrimSpace(mt)
	switch {
	case strings.EqualFold(mt, "text/plain"), strings.EqualFold(mt, "text/html"):
		return false // the common answers, decided without parsing
	case strings.EqualFold(mt, "application/json"):
		return true
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	return mt == "application/json" || strings.HasSuffix(mt, "+json")
}

// parseFetchExpect reads `expect`: a status, a class like "2xx", or a list.
func parseFetchExpect(v any) ([]statusMatch, error) {
	if l, ok := v.([]any); ok {
		if len(l) == 0 {
			return nil, errors.New("empty list; give at least one status or class")
		}
		out := make([]statusMatch, 0, len(l))
		for _, e := range l {
			m, err := parseFetchStatus(e)
			if err != nil {
				return nil, err
			}
			out = append(out, m)
		}
		return out, nil
	}
	m, err := parseFetchStatus(v)
	if err != nil {
		return nil, err
	}
	return []statusMatch{m}, nil
}

func parseFetchStatus(v any) (statusMatch, error) {
	if s, ok := v.(string); ok {
		s = strings.TrimSpace(s)
		if len(s) == 3 && (s[1:] == "xx" || s[1:] == "XX") && s[0] >= '1' && s[0] <= '5' {
			return statusMatch{class: int(s[0] - '0')}, nil
		}
		if n, err := strconv.Atoi(s); err == nil && n >= 100 && n <= 599 {
			return statusMatch{code: n}, nil
		}
		return statusMatch{}, fmt.Errorf("%q is not a status (200) or a class (2xx)", s)
	}
	if n, ok := fetchInt(v); ok && n >= 100 && n <= 599 {
		return statusMatch{code: int(n)}, nil
	}
	return statusMatch{}, fmt.Errorf("%v is not a status (100–599) or a class (2xx)", v)
}

// fetchDuration reads a duration: a Go duration string ("10s") or a
// time.Duration. A bare number is refused, since its unit is unclear.
func fetchDuration(v any) (time.Duration, error) {
	var d time.Duration
	switch x := v.(type) {
	case time.Duration:
		d = x
	case string:
		var err error
		if d, err = time.ParseDuration(strings.TrimSpace(x)); err != nil {
			return 0, fmt.Errorf("%q is not a duration (e.g. 500ms, 10s, 2m)", x)
		}
	default:
		return 0, fmt.Errorf("want a duration such as 10s, got %s %v", fetchTypeName(v), v)
	}
	if d <= 0 {
		return 0, fmt.Errorf("%s is not positive", d)
	}
	return d, nil
}

// fetchByteSize reads a byte size: a non-negative integer or a size string.
func fetchByteSize(v any) (int64, error) {
	if s, ok := v.(string); ok {
		return ParseByteSize(s)
	}
	n, ok := fetchInt(v)
	if !ok || n < 0 {
		return 0, fmt.Errorf("want a non-negative integer or a size like 10MiB, got %v", v)
	}
	return n, nil
}

// fetchInt returns v as an int64 when it is an integral number of any Go
// numeric type (YAML and expressions produce int, int64, uint64, float64…).
func fetchInt(v any) (int64, bool) {
	switch x := v.(type) {
	case int:
		return int64(x), true
	case int8:
		return int64(x), true
	case int16:
		return int64(x), true
	case int32:
		return int64(x), true
	case int64:
		return x, true
	case uint:
		return int64(x), x <= 1<<63-1
	case uint8:
		return int64(x), true
	case uint16:
		return int64(x), true
	case uint32:
		return int64(x), true
	case uint64:
		return int64(x), x <= 1<<63-1
	case float32:
		return fetchInt(float64(x))
	case float64:
		return int64(x), x >= -(1<<63) && x < 1<<63 && float64(int64(x)) == x
	case json.Number:
		n, err := x.Int64()
		return n, err == nil
	}
	return 0, false
}

// fetchObject accepts an object as map[string]any or map[string]string.
func fetchObject(v any) (map[string]any, bool) {
	switch m := v.(type) {
	case map[string]any:
		return m, true
	case map[string]string:
		out := make(map[string]any, len(m))
		for k, s := range m {
			out[k] = s
		}
		return out, true
	}
	return nil, false
}

// fetchScalarList renders a header or query value: a scalar, or a list of
// scalars (one value each). null is no value.
func fetchScalarList(v any) ([]string, error) {
	if v == nil {
		return nil, nil
	}
	if l, ok := v.([]any); ok {
		out := make([]string, 0, len(l))
		for _, e := range l {
			s, ok := fetchScalar(e)
			if !ok {
				return nil, fmt.Errorf("list elements must be strings, numbers or booleans, got %s", fetchTypeName(e))
			}
			out = append(out, s)
		}
		return out, nil
	}
	if l, ok := v.([]string); ok {
		return l, nil
	}
	s, ok := fetchScalar(v)
	if !ok {
		return nil, fmt.Errorf("want a string, number, boolean or list of them, got %s", fetchTypeName(v))
	}
	return []string{s}, nil
}

func fetchScalar(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case bool:
		if x {
			return "true", true
		}
		return "false", true
	case float32:
		return fetchScalar(float64(x))
	case float64:
		if n, ok := fetchInt(x); ok {
			return strconv.FormatInt(n, 10), true
		}
		return strconv.FormatFloat(x, 'f', -1, 64), true
	case json.Number:
		return x.String(), true
	}
	if n, ok := fetchInt(v); ok {
		return strconv.FormatInt(n, 10), true
	}
	return "", false
}

// isHTTPToken reports whether s is an RFC 9110 token (header names, methods).
func isHTTPToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0 {
			continue
		}
		return false
	}
	return true
}

// fetchTypeName names v's JSON-like type for error messages.
func fetchTypeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "string"
	case bool:
		return "boolean"
	case map[string]any:
		return "object"
	case []any:
		return "list"
	}
	if _, ok := fetchInt(v); ok {
		return "integer"
	}
	switch v.(type) {
	case float32, float64:
		return "number"
	}
	return fmt.Sprintf("%T", v)
}

var (
	fetchDefaultClientOnce sync.Once
	fetchDefaultClient     *http.Client
)

// fetchDefaultHTTPClient serves invocations whose Host offers no client (tools
// and tests that build an Invocation by hand).
func fetchDefaultHTTPClient() *http.Client {
	fetchDefaultClientOnce.Do(func() { fetchDefaultClient = NewHTTPClient("dev") })
	return fetchDefaultClient
}
