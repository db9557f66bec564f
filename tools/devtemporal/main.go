// Command devtemporal runs a single-process Temporal server for lgx's
// development and integration tests: all four services (frontend, history,
// matching, worker) in this process, SQLite persistence in a file under
// -data, the "default" namespace registered, every listener on 127.0.0.1.
//
// It lives in its own Go module so that the main module's go.mod and
// `go test ./...` never build the server's ~200 dependencies.
//
//	devtemporal -data DIR [-port 17233] [-log-level warn] [-namespace NS]...
//
// Ports: the frontend listens on -port (clients dial 127.0.0.1:PORT); the
// history, matching and worker services take PORT+1..PORT+3 and the four
// membership listeners PORT+4..PORT+7. Fixed ports, not ephemeral ones: the
// ephemeral range is busy on shared machines, and a fixed layout lets a second
// instance fail fast with "address already in use" instead of half-starting.
//
// At start the server writes its pid to DATA/pid. Once the frontend answers
// DescribeNamespace for every namespace, it writes DATA/ready (scripts wait
// for it) and logs "devtemporal: ready" to stderr. SIGINT or SIGTERM stops
// all services and exits 0. Restarting it on the same -data (after a kill -9,
// say) keeps the workflows and namespaces stored there.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/server/common/authorization"
	"go.temporal.io/server/common/cluster"
	"go.temporal.io/server/common/config"
	"go.temporal.io/server/common/dynamicconfig"
	"go.temporal.io/server/common/log"
	sqliteplugin "go.temporal.io/server/common/persistence/sql/sqlplugin/sqlite"
	"go.temporal.io/server/common/primitives"
	sqliteschema "go.temporal.io/server/schema/sqlite"
	"go.temporal.io/server/temporal"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

const (
	host        = "127.0.0.1"
	clusterName = "active"
	// portsUsed is how many consecutive ports from -port the server binds.
	portsUsed = 8
)

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

type options struct {
	dataDir    string
	port       int
	logLevel   string
	logFile    string
	namespaces []string
	dynamic    dynamicconfig.StaticClient
	readyWait  time.Duration
}

func main() {
	opts, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "devtemporal:", err)
		os.Exit(2)
	}
	if err := run(opts); err != nil {
		fmt.Fprintln(os.Stderr, "devtemporal:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string) (options, error) {
	fs := flag.NewFlagSet("devtemporal", flag.ContinueOnError)
	var o options
	var namespaces, dynamic stringList
	fs.StringVar(&o.dataDir, "data", "", "directory for the SQLite database, the log and the ready file (required; created if missing)")
	fs.IntVar(&o.port, "port", 17233, "frontend gRPC port on 127.0.0.1; the server also binds the next 7 ports")
	fs.StringVar(&o.logLevel, "log-level", "warn", "server log level: debug, info, warn, error")
	fs.StringVar(&o.logFile, "log-file", "", "server log file (default DATA/temporal.log)")
	fs.Var(&namespaces, "namespace", "namespace to register besides \"default\" (repeatable)")
	fs.Var(&dynamic, "dynamic-config", "dynamic config value KEY=JSON, e.g. frontend.enableUpdateWorkflowExecution=true (repeatable)")
	fs.DurationVar(&o.readyWait, "ready-timeout", 60*time.Second, "how long to wait for the frontend to serve the namespaces before giving up")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if o.dataDir == "" {
		return o, errors.New("-data DIR is required")
	}
	if o.port < 1024 || o.port+portsUsed-1 > 65535 {
		return o, fmt.Errorf("-port %d: need %d free ports from a port in 1024..%d", o.port, portsUsed, 65536-portsUsed)
	}
	if o.logFile == "" {
		o.logFile = filepath.Join(o.dataDir, "temporal.log")
	}
	o.namespaces = []string{"default"}
	for _, ns := range namespaces {
		if ns != "" && ns != "default" {
			o.namespaces = append(o.namespaces, ns)
		}
	}
	o.dynamic = dynamicconfig.StaticClient{}
	for _, kv := range dynamic {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return o, fmt.Errorf("-dynamic-config %q: want KEY=JSON", kv)
		}
		var val any
		if err := json.Unmarshal([]byte(v), &val); err != nil {
			return o, fmt.Errorf("-dynamic-config %s: value is not JSON (quote strings): %w", k, err)
		}
		o.dynamic[dynamicconfig.MakeKey(k)] = val
	}
	return o, nil
}

func run(o options) error {
	// Catch signals first, so a SIGTERM at any point of startup ends in an
	// orderly exit (the server's Stop once it has started) rather than the
	// default action killing the process mid-write.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if err := os.MkdirAll(o.dataDir, 0o755); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	readyFile := filepath.Join(o.dataDir, "ready")
	_ = os.Remove(readyFile) // a stale one from an earlier run would lie
	// DATA/pid names the process serving this data directory, also after a
	// test restarted the server on it: stop.sh signals whatever it names.
	if err := os.WriteFile(filepath.Join(o.dataDir, "pid"), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return fmt.Errorf("pid file: %w", err)
	}
	// Fail fast, before creating any state, when another server (or a
	// previous instance still shutting down) holds one of our ports.
	for p := o.port; p < o.port+portsUsed; p++ {
		l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(p)))
		if err != nil {
			return fmt.Errorf("port %d (of %d..%d) is not free: %w", p, o.port, o.port+portsUsed-1, err)
		}
		_ = l.Close()
	}

	logger := log.NewZapLogger(log.BuildZapLogger(log.Config{Level: o.logLevel, OutputFile: o.logFile}))

	cfg := serverConfig(o)
	sqlCfg := cfg.Persistence.DataStores[sqliteplugin.PluginName].SQL
	dbFile := sqlCfg.DatabaseName
	if _, err := os.Stat(dbFile); errors.Is(err, os.ErrNotExist) {
		if err := sqliteschema.SetupSchema(sqlCfg); err != nil {
			_ = os.Remove(dbFile) // half a schema would make the next start fail differently
			return fmt.Errorf("create SQLite schema in %s: %w", dbFile, err)
		}
	} else if err != nil {
		return fmt.Errorf("database file: %w", err)
	}
	var nsConfigs []*sqliteschema.NamespaceConfig
	for _, ns := range o.namespaces {
		nc, err := sqliteschema.NewNamespaceConfig(clusterName, ns, false, nil)
		if err != nil {
			return fmt.Errorf("namespace %q: %w", ns, err)
		}
		nsConfigs = append(nsConfigs, nc)
	}
	// Idempotent: existing namespaces are left as they are on a restart.
	if err := sqliteschema.CreateNamespaces(sqlCfg, nsConfigs...); err != nil {
		return fmt.Errorf("register namespaces: %w", err)
	}

	authorizer, err := authorization.GetAuthorizerFromConfig(&cfg.Global.Authorization)
	if err != nil {
		return fmt.Errorf("authorizer: %w", err)
	}
	claimMapper, err := authorization.GetClaimMapperFromConfig(&cfg.Global.Authorization, logger)
	if err != nil {
		return fmt.Errorf("claim mapper: %w", err)
	}
	serverOpts := []temporal.ServerOption{
		temporal.WithConfig(cfg),
		temporal.ForServices(temporal.DefaultServices),
		temporal.WithLogger(logger),
		temporal.WithAuthorizer(authorizer),
		temporal.WithClaimMapper(func(*config.Config) authorization.ClaimMapper { return claimMapper }),
		temporal.WithDynamicConfigClient(o.dynamic),
	}
	srv, err := temporal.NewServer(serverOpts...)
	if err != nil {
		return fmt.Errorf("create server: %w", err)
	}

	if ctx.Err() != nil {
		return nil // stopped before the server started: nothing to stop
	}
	started := time.Now()
	if err := srv.Start(); err != nil {
		_ = srv.Stop()
		return fmt.Errorf("start server (log: %s): %w", o.logFile, err)
	}
	frontend := net.JoinHostPort(host, strconv.Itoa(o.port))
	if err := waitServing(ctx, frontend, o.namespaces, o.readyWait); err != nil {
		_ = srv.Stop()
		if ctx.Err() != nil {
			return nil // a signal, not a failure
		}
		return fmt.Errorf("server started but does not serve (log: %s): %w", o.logFile, err)
	}
	if err := os.WriteFile(readyFile, []byte(frontend+"\n"), 0o644); err != nil {
		_ = srv.Stop()
		return fmt.Errorf("ready file: %w", err)
	}
	fmt.Fprintf(os.Stderr, "devtemporal: ready on %s (namespaces %s) in %s; data %s\n",
		frontend, strings.Join(o.namespaces, ","), time.Since(started).Round(time.Millisecond), o.dataDir)

	<-ctx.Done()
	fmt.Fprintln(os.Stderr, "devtemporal: stopping")
	_ = os.Remove(readyFile)
	if err := srv.Stop(); err != nil {
		return fmt.Errorf("stop server: %w", err)
	}
	return nil
}

// serverConfig is the whole static configuration: a one-node cluster whose
// services all run here, bound to 127.0.0.1 on fixed ports.
func serverConfig(o options) *config.Config {
	svc := func(offset int) config.Service {
		return config.Service{RPC: config.RPC{
			GRPCPort:       o.port + offset,
			MembershipPort: o.port + 4 + offset,
			BindOnIP:       host,
		}}
	}
	frontend := net.JoinHostPort(host, strconv.Itoa(o.port))
	return &config.Config{
		Global: config.Global{
			Membership: config.Membership{MaxJoinDuration: 30 * time.Second, BroadcastAddress: host},
			// Metrics nil: a no-op handler, no Prometheus listener; PProf
			// port 0: no pprof listener. Nothing binds outside the 8 ports.
		},
		Persistence: config.Persistence{
			DefaultStore:     sqliteplugin.PluginName,
			VisibilityStore:  sqliteplugin.PluginName,
			NumHistoryShards: 1,
			DataStores: map[string]config.DataStore{
				sqliteplugin.PluginName: {SQL: &config.SQL{
					PluginName:   sqliteplugin.PluginName,
					DatabaseName: filepath.Join(o.dataDir, "temporal.db"),
					// WAL with synchronous=NORMAL survives a killed process
					// (the kill -9 test); only an OS crash may lose the last
					// transactions, which a throwaway dev server can afford.
					ConnectAttributes: map[string]string{
						"mode":         "rwc",
						"journal_mode": "wal",
						"synchronous":  "1",
						"busy_timeout": "10000",
					},
				}},
			},
		},
		ClusterMetadata: &cluster.Config{
			EnableGlobalNamespace:    false,
			FailoverVersionIncrement: 10,
			MasterClusterName:        clusterName,
			CurrentClusterName:       clusterName,
			ClusterInformation: map[string]cluster.ClusterInformation{
				clusterName: {Enabled: true, InitialFailoverVersion: 1, RPCAddress: frontend},
			},
		},
		DCRedirectionPolicy: config.DCRedirectionPolicy{Policy: "noop"},
		Services: map[string]config.Service{
			string(primitives.FrontendService): svc(0),
			string(primitives.HistoryService):  svc(1),
			string(primitives.MatchingService): svc(2),
			string(primitives.WorkerService):   svc(3),
		},
		Archival: config.Archival{
			History:    config.HistoryArchival{State: "disabled"},
			Visibility: config.VisibilityArchival{State: "disabled"},
		},
		NamespaceDefaults: config.NamespaceDefaults{Archival: config.ArchivalNamespaceDefaults{
			History:    config.HistoryArchivalNamespaceDefaults{State: "disabled"},
			Visibility: config.VisibilityArchivalNamespaceDefaults{State: "disabled"},
		}},
		// The server's own system workflows dial the frontend through this.
		PublicClient: config.PublicClient{HostPort: frontend},
	}
}

// waitServing polls the frontend until it answers DescribeNamespace for every
// namespace: a listening socket alone does not mean the namespace registry
// has loaded, and a test that starts a workflow too early gets NotFound.
func waitServing(ctx context.Context, frontend string, namespaces []string, limit time.Duration) error {
	conn, err := grpc.NewClient(frontend, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("dial %s: %w", frontend, err)
	}
	defer func() { _ = conn.Close() }()
	wf := workflowservice.NewWorkflowServiceClient(conn)
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	var lastErr error
	for _, ns := range namespaces {
		for {
			callCtx, callCancel := context.WithTimeout(ctx, 2*time.Second)
			_, lastErr = wf.DescribeNamespace(callCtx, &workflowservice.DescribeNamespaceRequest{Namespace: ns})
			callCancel()
			if lastErr == nil {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("namespace %q not served within %s: %w", ns, limit, lastErr)
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	return nil
}
