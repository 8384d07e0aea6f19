package printer

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"k8s.io/apimachinery/pkg/util/duration"

	"github.com/sluice/sluice/internal/xds"
)

// proxyTypes are the xDS types shown as columns, in the order istioctl
// proxy-status uses.
var proxyTypes = []string{"CDS", "LDS", "EDS", "RDS", "SDS"}

// PrintProxies writes the connected proxies as a table like `istioctl
// proxy-status`: a column per xDS type with SYNCED, STALE, NACKED or NOT
// SENT ("-" for a type the proxy never asked for). Wide adds the server
// replica it is connected to, the versions and the text of each type's last
// NACK.
func PrintProxies(w io.Writer, proxies []xds.ProxyStatus, wide bool, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	header := []string{"NODE", "ADDRESS", "CLIENT", "PROTOCOL", "CONNECTED"}
	header = append(header, proxyTypes...)
	if wide {
		header = append(header, "SERVER", "VERSIONS", "LAST NACK")
	}
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, p := range proxies {
		client := p.Client
		if p.ClientVersion != "" {
			client += " " + p.ClientVersion
		}
		row := []string{p.Node, p.Address, orNone(client), p.Protocol, duration.HumanDuration(now.Sub(p.ConnectedSince))}
		var versions, nacks []string
		for _, t := range proxyTypes {
			ts, ok := p.Types[t]
			if !ok {
				row = append(row, "-")
				continue
			}
			row = append(row, ts.State)
			if ts.Sent != "" {
				versions = append(versions, fmt.Sprintf("%s=%s", t, short(ts.Sent)))
			}
			if n := ts.LastNACK; n != nil {
				nacks = append(nacks, fmt.Sprintf("%s %s at %s: %s", t, short(n.Version), n.Time.UTC().Format(time.RFC3339), oneLine(n.Error)))
			}
		}
		if wide {
			sort.Strings(versions)
			row = append(row, orNone(p.Server), orNone(strings.Join(versions, ",")), orNone(strings.Join(nacks, "; ")))
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	return tw.Flush()
}

func orNone(s string) string {
	if s == "" {
		return none
	}
	return s
}

// short abbreviates a version hash for a table.
func short(v string) string {
	if len(v) > 8 {
		return v[:8]
	}
	return v
}

// oneLine keeps an error text on one table row.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
