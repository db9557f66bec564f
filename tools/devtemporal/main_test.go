package main

import (
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"go.temporal.io/server/common/dynamicconfig"
	sqliteplugin "go.temporal.io/server/common/persistence/sql/sqlplugin/sqlite"
)

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
		check   func(t *testing.T, o options)
	}{
		{name: "defaults", args: []string{"-data", "/tmp/d"}, check: func(t *testing.T, o options) {
			if o.port != 17233 || o.logLevel != "warn" || o.logFile != filepath.Join("/tmp/d", "temporal.log") {
				t.Errorf("port %d, level %q, log %q", o.port, o.logLevel, o.logFile)
			}
			if strings.Join(o.namespaces, ",") != "default" {
				t.Errorf("namespaces %v, want [default]", o.namespaces)
			}
		}},
		{name: "namespaces deduplicate default", args: []string{"-data", "d", "-namespace", "default", "-namespace", "lgx"}, check: func(t *testing.T, o options) {
			if strings.Join(o.namespaces, ",") != "default,lgx" {
				t.Errorf("namespaces %v, want [default lgx]", o.namespaces)
			}
		}},
		{name: "dynamic config is JSON", args: []string{"-data", "d", "-dynamic-config", "limit.maxIDLength=255", "-dynamic-config", `system.x="s"`}, check: func(t *testing.T, o options) {
			if v := o.dynamic[dynamicconfig.MakeKey("limit.maxIDLength")]; v != float64(255) {
				t.Errorf("limit.maxIDLength = %#v", v)
			}
			if v := o.dynamic[dynamicconfig.MakeKey("system.x")]; v != "s" {
				t.Errorf("system.x = %#v", v)
			}
		}},
		{name: "data required", args: nil, wantErr: "-data DIR is required"},
		{name: "port too high", args: []string{"-data", "d", "-port", "65530"}, wantErr: "need 8 free ports"},
		{name: "port privileged", args: []string{"-data", "d", "-port", "80"}, wantErr: "need 8 free ports"},
		{name: "dynamic without =", args: []string{"-data", "d", "-dynamic-config", "k"}, wantErr: "want KEY=JSON"},
		{name: "dynamic unquoted string", args: []string{"-data", "d", "-dynamic-config", "k=abc"}, wantErr: "value is not JSON"},
		{name: "stray argument", args: []string{"-data", "d", "extra"}, wantErr: `unexpected argument "extra"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseFlags(tt.args)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to mention %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, o)
		})
	}
}

// TestServerConfigBindsLoopbackOnFixedPorts pins the port layout the scripts
// and the README promise: PORT..PORT+7, all on 127.0.0.1, nothing else.
func TestServerConfigBindsLoopbackOnFixedPorts(t *testing.T) {
	cfg := serverConfig(options{dataDir: "/tmp/d", port: 20000})
	seen := map[int]string{}
	for name, svc := range cfg.Services {
		if svc.RPC.BindOnIP != "127.0.0.1" || svc.RPC.BindOnLocalHost {
			t.Errorf("%s binds %q (localhost %v), want 127.0.0.1", name, svc.RPC.BindOnIP, svc.RPC.BindOnLocalHost)
		}
		if svc.RPC.HTTPPort != 0 {
			t.Errorf("%s has an HTTP port %d", name, svc.RPC.HTTPPort)
		}
		for _, p := range []int{svc.RPC.GRPCPort, svc.RPC.MembershipPort} {
			if p < 20000 || p >= 20000+portsUsed {
				t.Errorf("%s uses port %d outside 20000..%d", name, p, 20000+portsUsed-1)
			}
			if other, dup := seen[p]; dup {
				t.Errorf("port %d used by %s and %s", p, other, name)
			}
			seen[p] = name
		}
	}
	if len(seen) != portsUsed {
		t.Errorf("%d ports used, want %d", len(seen), portsUsed)
	}
	if got := cfg.Services["frontend"].RPC.GRPCPort; got != 20000 {
		t.Errorf("frontend on %d, want 20000", got)
	}
	if want := net.JoinHostPort("127.0.0.1", strconv.Itoa(20000)); cfg.PublicClient.HostPort != want {
		t.Errorf("public client %q, want %q", cfg.PublicClient.HostPort, want)
	}
	if cfg.Global.Metrics != nil || cfg.Global.PProf.Port != 0 {
		t.Errorf("metrics %v / pprof port %d: they would bind more ports", cfg.Global.Metrics, cfg.Global.PProf.Port)
	}
	sql := cfg.Persistence.DataStores[sqliteplugin.PluginName].SQL
	if sql == nil || sql.DatabaseName != filepath.Join("/tmp/d", "temporal.db") {
		t.Fatalf("sqlite store %+v, want temporal.db under the data dir", sql)
	}
}
