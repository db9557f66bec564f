package runner

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/lgx-run/lgx/spec"
	"github.com/lgx-run/lgx/store"
)

// inflight counts requests in flight, per server and in total, keeping
// the maxima.
type inflight struct {
	mu       sync.Mutex
	now, max map[string]int
	total    int
	maxTotal int
}

func (f *inflight) enter(host string) {
	f.mu.Lock()
	f.now[host]++
	f.max[host] = max(f.max[host], f.now[host])
	f.total++
	f.maxTotal = max(f.maxTotal, f.total)
	f.mu.Unlock()
}

func (f *inflight) leave(host string) {
	f.mu.Lock()
	f.now[host]--
	f.total--
	f.mu.Unlock()
}

// A for_each over 60 URLs on 3 servers with a pool keyed by host:port,
// per_key concurrency 2 and a total of 4: no server ever sees more than 2
// requests at once, the three together never more than 4, and the run
// does use 4 at once (a busy host does not hold total slots while it
// waits for its own bucket).
func TestKeyedPoolPerHostAndTotal(t *testing.T) {
	f := &inflight{now: map[string]int{}, max: map[string]int{}}
	var urls []any
	for s := range 3 {
		name := fmt.Sprintf("s%d", s)
		ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			f.enter(name)
			time.Sleep(8 * time.Millisecond)
			f.leave(name)
			_, _ = w.Write([]byte("ok"))
		}))
		defer ts.Close()
		for i := range 20 {
			urls = append(urls, fmt.Sprintf("%s/%d", ts.URL, i))
		}
	}
	// Interleave nothing: the list is host by host, the worst case for a
	// cap that would take total slots before the key's.
	res, err := runYAML(t, `
lgx: 1
name: t
pools:
  crawl: {concurrency: 4, per_key: {concurrency: 2}}
state:
  urls: {type: list}
  n: {type: integer, reducer: sum, default: 0}
nodes:
  get:
    type: http_fetch
    for_each: ${{ state.urls }}
    pool: {name: crawl, key: '${{ split(item, "/")[2] }}'}
    with: {url: "${{ item }}"}
    output: {n: 1}
edges:
  - {from: START, to: get}
`, map[string]any{"urls": urls})
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != store.StatusCompleted || res.State["n"] != 60 {
		t.Fatalf("status %s, n = %v", res.Status, res.State["n"])
	}
	for h, m := range f.max {
		if m > 2 {
			t.Errorf("server %s saw %d requests in flight, want <= 2", h, m)
		}
	}
	if f.maxTotal != 4 {
		t.Errorf("max requests in flight over all servers = %d, want exactly 4", f.maxTotal)
	}
}

// Without per_key, a key's bucket caps nothing of its own and the pool's
// caps bound every key together (SPEC §9.9: "bounded by the pool's
// total"): three keys of a pool of 1 run one at a time.
func TestKeyedPoolWithoutPerKey(t *testing.T) {
	g := resetGroup("kp1")
	res, err := runYAML(t, `
lgx: 1
name: t
pools:
  tenant: {concurrency: 1}
state: {}
nodes:
  f:
    type: probe
    for_each: ${{ 1..12 }}
    pool: {name: tenant, key: "${{ item % 3 }}"}
    with: {sleep_ms: 10, group: kp1}
edges:
  - {from: START, to: f}
`, nil)
	if err != nil || res.Status != store.StatusCompleted {
		t.Fatalf("run: %v %v", err, res)
	}
	if g.max != 1 {
		t.Errorf("max in flight = %d, want 1 (the pool's total)", g.max)
	}
}

// Buckets are dropped when idle: 10,000 distinct keys leave no bucket
// behind without a rate, and a bounded number with one.
func TestKeyedPoolDropsIdleBuckets(t *testing.T) {
	l := &limits{pools: map[string]*pool{}}
	for _, tt := range []struct {
		name string
		p    *spec.Pool
		max  int
	}{
		{"concurrency only", &spec.Pool{Name: "a", Concurrency: 100, PerKey: &spec.PoolLimits{Concurrency: 1}}, 0},
		{"with a rate", &spec.Pool{Name: "b", PerKey: &spec.PoolLimits{Rate: spec.Rate{Count: 1000, Per: time.Second}, Burst: 1}}, 2 * minSweep},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := newPool(tt.p)
			clock := time.Now()
			p.keyed.now = func() time.Time { return clock }
			for i := range 10000 {
				c := &caps{pools: []*pool{p}, keyAt: 1, key: fmt.Sprint("host", i)}
				if err := l.acquire(context.Background(), c, nil, false); err != nil {
					t.Fatal(err)
				}
				l.release(c)
				clock = clock.Add(time.Second) // every older bucket has refilled
			}
			if n := p.keyed.size(); n > tt.max {
				t.Errorf("%d buckets kept after 10,000 keys, want <= %d", n, tt.max)
			}
		})
	}
}

// A waiter cancelled while waiting for its key's bucket holds nothing.
func TestKeyedPoolCancelledWaitReleases(t *testing.T) {
	l := &limits{pools: map[string]*pool{}}
	p := newPool(&spec.Pool{Name: "a", Concurrency: 1, PerKey: &spec.PoolLimits{Concurrency: 1}})
	a := &caps{pools: []*pool{p}, keyAt: 1, key: "x"}
	if err := l.acquire(context.Background(), a, nil, false); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	var waited []string
	b := &caps{pools: []*pool{p}, keyAt: 1, key: "x"}
	if err := l.acquire(ctx, b, func(w string) { waited = append(waited, w) }, false); err == nil {
		t.Fatal("second acquire of key x succeeded")
	}
	if len(waited) != 1 || waited[0] != "pool a key x" {
		t.Errorf("waits = %q", waited)
	}
	l.release(a)
	if n := p.keyed.size(); n != 0 {
		t.Errorf("%d buckets kept", n)
	}
	c := &caps{pools: []*pool{p}, keyAt: 1, key: "y"}
	if err := l.acquire(context.Background(), c, nil, false); err != nil {
		t.Fatalf("total slot leaked: %v", err)
	}
	l.release(c)
}

// BenchmarkKeyedPoolAcquireRelease is one keyed invocation's acquire and
// release (bucket and total) over 1,000 keys, in parallel.
func BenchmarkKeyedPoolAcquireRelease(b *testing.B) {
	l := &limits{pools: map[string]*pool{}}
	p := newPool(&spec.Pool{Name: "crawl", Concurrency: 1 << 20, PerKey: &spec.PoolLimits{Concurrency: 1 << 10}})
	keys := make([]string, 1000)
	for i := range keys {
		keys[i] = fmt.Sprint("host", i)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			c := caps{pools: []*pool{p}, keyAt: 1, key: keys[i%len(keys)]}
			if err := l.acquire(context.Background(), &c, nil, false); err != nil {
				b.Fatal(err)
			}
			l.release(&c)
			i++
		}
	})
}
