package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"

	"github.com/rogpeppe/go-internal/testscript"
)

// cmdEchoServer: echoserver VAR. Starts a server that answers /echo with a
// JSON object repeating what it received (URL, the `token` query value,
// that value as an object key and inside a Basic credential, and the
// X-Api-Key, Idempotency-Key and Referer headers); /fail with a 500 and
// the same body; /redirect?to=URL[&code=N] with a redirect (302 unless
// code says otherwise). encoding/json writes & < > as \u0026 \u003c \u003e.
func cmdEchoServer(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: echoserver VAR")
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if r.URL.Path == "/redirect" {
			code, err := strconv.Atoi(q.Get("code"))
			if err != nil {
				code = http.StatusFound
			}
			w.Header().Set("Location", q.Get("to"))
			w.WriteHeader(code)
			return
		}
		tok := q.Get("token")
		body, _ := json.Marshal(map[string]any{"url": r.URL.String(), "token": tok, "keyed": map[string]any{tok: 1},
			"basic":   "Basic " + base64.StdEncoding.EncodeToString([]byte("user:"+tok)),
			"api_key": r.Header.Get("X-Api-Key"), "idempotency_key": r.Header.Get("Idempotency-Key"),
			"referer": r.Header.Get("Referer")})
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/fail" {
			w.WriteHeader(http.StatusInternalServerError)
		}
		w.Write(body)
	}))
	ts.Defer(srv.Close)
	ts.Setenv(args[0], srv.URL)
}

// leakForms are the encodings of a secret that must never be printed or
// stored, computed with the standard library.
func leakForms(s string) map[string]string {
	j, _ := json.Marshal(s)
	b64 := base64.StdEncoding.EncodeToString([]byte(s))
	return map[string]string{
		"raw":           s,
		"query-escaped": url.QueryEscape(s),
		"path-escaped":  url.PathEscape(s),
		"json-escaped":  string(j[1 : len(j)-1]),
		"base64":        b64,
		"base64url":     base64.RawURLEncoding.EncodeToString([]byte(s)),
		"query(base64)": url.QueryEscape(b64),
		"json(path)":    func() string { j, _ := json.Marshal(url.PathEscape(s)); return string(j[1 : len(j)-1]) }(),
		// the part of a Basic credential's base64 that depends on s alone
		"inside base64": base64.StdEncoding.EncodeToString([]byte("user:" + s))[8:20],
	}
}

// cmdNoLeak: noleak SECRET FILE|GLOB... Fails if any of the files
// (stdout and stderr saved with cp, the SQLite store and its WAL) contains
// any encoding of SECRET. Each pattern must match a file.
func cmdNoLeak(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: noleak SECRET FILE|GLOB...")
	}
	forms := leakForms(args[0])
	for _, pat := range args[1:] {
		files, err := filepath.Glob(ts.MkAbs(pat))
		if err != nil || len(files) == 0 {
			ts.Fatalf("noleak: no file matches %s", pat)
		}
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				ts.Fatalf("noleak: %v", err)
			}
			for name, form := range forms {
				if i := bytes.Index(data, []byte(form)); i >= 0 {
					ts.Fatalf("noleak: %s holds the secret %s (%q): …%s…", filepath.Base(f), name, form,
						data[max(0, i-80):min(len(data), i+len(form)+80)])
				}
			}
		}
	}
}

var runIDPattern = regexp.MustCompile(`\brun ([0-9A-Z]{26})\b`)

// cmdRunID: runid VAR FILE. Sets VAR to the run id lgx printed ("run ID")
// in FILE (a saved stderr).
func cmdRunID(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: runid VAR FILE")
	}
	m := runIDPattern.FindSubmatch([]byte(ts.ReadFile(args[1])))
	if m == nil {
		ts.Fatalf("runid: no run id in %s", args[1])
	}
	ts.Setenv(args[0], string(m[1]))
}
