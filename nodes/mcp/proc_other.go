//go:build !unix

package mcp

import (
	"os/exec"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

func ownProcessGroup(*exec.Cmd) {}

type killGroup struct {
	sdk.CommandTransport
}
