package main

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluice/sluice/internal/printer"
	"github.com/sluice/sluice/internal/xds"
)

func newProxiesCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "proxies",
		Short: "Show the connected xDS clients and whether each is in sync",
		Long: `Proxies lists the xDS clients connected to the server (Envoy, proxyless gRPC,
sluice gateway) with, per resource type, SYNCED (the client ACKed the last
version sent), STALE (sent, not ACKed yet), NACKED (the client rejected the
last version sent and runs its previous config) or NOT SENT. -o wide adds the
server replica each client is connected to, the versions sent and the text
of the last NACK of each type. With several server replicas, the server asked
gathers the proxies of every replica.`,
		Example: "  sluice proxies\n  sluice proxies -o wide",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			format, err := printer.ParseFormat(output)
			if err != nil {
				return err
			}
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			var raw json.RawMessage
			if _, err := c.Do(cmd.Context(), http.MethodGet, "/apis/sluice.io/v1alpha1/proxies", nil, nil, "", &raw); err != nil {
				return err
			}
			if format == printer.YAML || format == printer.JSON {
				return printer.Raw(cmd.OutOrStdout(), format, raw)
			}
			var list xds.ProxyList
			if err := json.Unmarshal(raw, &list); err != nil {
				return err
			}
			for _, u := range list.Unreachable {
				cmd.PrintErrln("Warning: proxies of a server replica are missing:", u)
			}
			if len(list.Items) == 0 {
				cmd.PrintErrln("No proxies connected.")
				return nil
			}
			return printer.PrintProxies(cmd.OutOrStdout(), list.Items, format == printer.Wide, time.Now())
		},
	}
	addConnectionFlags(cmd.Flags())
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table, wide, yaml or json")
	return cmd
}
