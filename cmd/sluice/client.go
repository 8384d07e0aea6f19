package main

import "github.com/spf13/cobra"

// addClientCommands adds the commands that talk to a server's API.
func addClientCommands(root *cobra.Command) {}
