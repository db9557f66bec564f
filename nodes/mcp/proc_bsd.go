//go:build unix && !linux

package mcp

import "syscall"

// setParentDeath: only Linux has a parent-death signal; elsewhere a server
// whose lgx was killed sees its stdin close and exits by itself.
func setParentDeath(*syscall.SysProcAttr) {}
