package nodes

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// MaxRedirects is how many redirects a request follows before it fails;
// a redirect loop is reported after this many hops.
const MaxRedirects = 10

// HTTPMaxIdleConnsPerHost is how many idle keep-alive connections the shared
// client keeps per host: above the default global concurrency (32) and the
// usual `--concurrency` values, so that a fan-out to one host reuses its
// connections instead of redialling.
const HTTPMaxIdleConnsPerHost = 128

// NewHTTPClient returns the client a whole run shares (Host.HTTPClient):
// keep-alive connections pooled per host, HTTP/2 attempted over TLS, proxy
// from the environment (HTTP_PROXY, HTTPS_PROXY, NO_PROXY), TLS verification
// on, and `User-Agent: lgx/VERSION` on every request that sets none. It has
// no client-level Timeout: per-attempt deadlines come from the context. It
// follows up to MaxRedirects redirects; http_fetch applies its own
// per-request redirect policy on a shallow copy (see WithRedirectPolicy).
func NewHTTPClient(version string) *http.Client {
	if version == "" {
		version = "dev"
	}
	dialer := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	base := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          4 * HTTPMaxIdleConnsPerHost,
		MaxIdleConnsPerHost:   HTTPMaxIdleConnsPerHost,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	return &http.Client{
		Transport:     newUserAgentTransport(base, "lgx/"+version),
		CheckRedirect: redirectPolicyFunc(true),
	}
}

// WithRedirectPolicy returns a shallow copy of c (sharing its Transport and
// so its connection pool) that follows redirects, up to MaxRedirects, only
// when follow is true; otherwise the 3xx response itself is returned.
// Copies are cheap, so callers make one per request. A client from
// NewHTTPClient already follows with that policy and is returned as is.
func WithRedirectPolicy(c *http.Client, follow bool) *http.Client {
	if _, ok := c.Transport.(*userAgentTransport); ok && follow {
		return c
	}
	cc := *c
	cc.CheckRedirect = redirectPolicyFunc(follow)
	return &cc
}

// ErrTooManyRedirects is wrapped by the error of a request that was
// redirected more than MaxRedirects times (usually a redirect loop).
var ErrTooManyRedirects = errors.New("too many redirects")

// ErrCrossOriginBody is wrapped by the error of a request with a body that
// a 307 or 308 redirected to another origin (SPEC §9.7): the body may hold
// a secret meant for the server the workflow named, so it is not re-sent.
var ErrCrossOriginBody = errors.New("not following a redirect to another origin with the request body")

// redirectPolicyFunc is the clients' CheckRedirect. Following a redirect,
// net/http copies the first request's headers to every hop and adds a
// Referer naming the previous URL (query included). Once a hop leaves the
// first request's origin (scheme, host or port differ), every header is
// dropped instead — the workflow's `headers`, Idempotency-Key and Referer —
// for that hop and all later ones (a redirect back does not restore them:
// the other origin chose it); the transport then adds only User-Agent and
// Accept-Encoding. A 307/308 that would carry the body there fails with
// ErrCrossOriginBody. Same-origin redirects keep net/http's behaviour.
func redirectPolicyFunc(follow bool) func(*http.Request, []*http.Request) error {
	return func(req *http.Request, via []*http.Request) error {
		if !follow {
			return http.ErrUseLastResponse
		}
		if len(via) > MaxRedirects {
			return fmt.Errorf("%w: stopped after %d redirects (a redirect loop?), next was %s",
				ErrTooManyRedirects, MaxRedirects, req.URL.Redacted())
		}
		first := origin(via[0].URL)
		crossed := origin(req.URL) != first
		for _, r := range via[1:] {
			crossed = crossed || origin(r.URL) != first
		}
		if !crossed {
			return nil
		}
		if req.Body != nil && req.Body != http.NoBody {
			status := 0
			if req.Response != nil {
				status = req.Response.StatusCode
			}
			return fmt.Errorf("%w (%d from %s to %s)", ErrCrossOriginBody, status,
				via[len(via)-1].URL.Redacted(), req.URL.Redacted())
		}
		req.Header = make(http.Header)
		return nil
	}
}

// origin is a URL's scheme, host and port (the scheme's default when
// absent), in lower case, as browsers compare them.
func origin(u *url.URL) string {
	scheme := strings.ToLower(u.Scheme)
	port := u.Port()
	if port == "" {
		switch scheme {
		case "http":
			port = "80"
		case "https":
			port = "443"
		}
	}
	return scheme + "://" + net.JoinHostPort(strings.ToLower(u.Hostname()), port)
}

// userAgentTransport sets the User-Agent header of requests that have none.
type userAgentTransport struct {
	base   *http.Transport
	ua     string
	header http.Header // just User-Agent: ua; shared by requests, never modified
}

func newUserAgentTransport(base *http.Transport, ua string) *userAgentTransport {
	return &userAgentTransport{base: base, ua: ua, header: http.Header{"User-Agent": {ua}}}
}

// RoundTrip implements http.RoundTripper. It never modifies req: a request
// without User-Agent is sent as a copy with its own header map.
func (t *userAgentTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if _, ok := req.Header["User-Agent"]; !ok {
		r := *req
		r.Header = req.Header.Clone()
		if r.Header == nil {
			r.Header = make(http.Header, 1)
		}
		r.Header["User-Agent"] = []string{t.ua}
		req = &r
	}
	return t.base.RoundTrip(req)
}

// CloseIdleConnections lets http.Client.CloseIdleConnections reach the
// pooled connections.
func (t *userAgentTransport) CloseIdleConnections() { t.base.CloseIdleConnections() }
