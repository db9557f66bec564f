package mcp

import "syscall"

// setParentDeath has Linux kill a stdio server when lgx dies (kill -9),
// where no Close can run.
func setParentDeath(a *syscall.SysProcAttr) { a.Pdeathsig = syscall.SIGKILL }
