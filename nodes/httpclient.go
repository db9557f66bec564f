package nodes

import (
	"errors"
	"fmt"
	"net"
	"net/http"
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

func redirectPolicyFunc(follow bool) func(*http.Request, []*http.Request) error {
	return func(req *http.Request, via []*http.Request) error {
		if !follow {
			return http.ErrUseLastResponse
		}
		if len(via) > MaxRedirects {
			return fmt.Errorf("%w: stopped after %d redirects (a redirect loop?), next was %s",
				ErrTooManyRedirects, MaxRedirects, req.URL.Redacted())
		}
		return nil
	}
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
