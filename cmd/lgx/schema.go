package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/lgx-run/lgx/spec"
)

//go:generate sh -c "go run . schema > ../../docs/lgx.schema.json"

// schemaOptions are lgx schema's: it has no flags.
type schemaOptions struct{}

func (a *app) schemaCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "schema",
		Short: "Print the JSON Schema of workflow files, for editors",
		Long: `schema prints the JSON Schema (draft 2020-12) of lgx workflow files on
stdout: every key with its type, allowed values and meaning, and, per node
type, the fields of its "with:" block. Editors with a YAML language server
use it for completion, hover docs and checks as you type.

The same schema is published as docs/lgx.schema.json; point a workflow at it
with a first line like:
  # yaml-language-server: $schema=../docs/lgx.schema.json`,
		Example: `  lgx schema > lgx.schema.json`,
		Args:    exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runSchema(cmd.Context(), schemaOptions{})
		},
	}
}

// runSchema prints the workflow JSON Schema.
func (a *app) runSchema(_ context.Context, _ schemaOptions) error {
	b, err := spec.JSONSchema()
	if err != nil {
		return fmt.Errorf("generate schema: %w", err)
	}
	_, err = a.ios.Out.Write(b)
	return err
}
