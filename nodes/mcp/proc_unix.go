//go:build unix

package mcp

import (
	"context"
	"os/exec"
	"syscall"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// ownProcessGroup starts a stdio server in a process group of its own: a
// terminal's Ctrl-C reaches lgx only (which then stops the server), and
// stopping it reaches what it started (`npx` runs `node`).
func ownProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	setParentDeath(cmd.SysProcAttr)
}

// killGroup is the SDK's command transport whose Close also kills the
// server's process group, so no grandchild outlives the run.
type killGroup struct {
	sdk.CommandTransport
}

func (t *killGroup) Connect(ctx context.Context) (sdk.Connection, error) {
	c, err := t.CommandTransport.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &groupConn{Connection: c, cmd: t.Command}, nil
}

type groupConn struct {
	sdk.Connection
	cmd *exec.Cmd
}

func (c *groupConn) Close() error {
	err := c.Connection.Close()
	if p := c.cmd.Process; p != nil {
		_ = syscall.Kill(-p.Pid, syscall.SIGKILL)
	}
	return err
}
