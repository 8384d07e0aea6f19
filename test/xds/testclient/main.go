// Command testclient is the proxyless gRPC client of the xDS end-to-end
// tests: it dials an xds:/// target with grpc-go's own xDS client and sends
// TestService.UnaryCall in a loop, printing one line per RPC to stdout:
//
//	ok <server_id>
//	err <grpc code> <message>
//
// It runs until stdin closes or it gets SIGTERM or SIGINT, then exits 0.
//
// grpc-go reads its bootstrap (GRPC_XDS_BOOTSTRAP_CONFIG or
// GRPC_XDS_BOOTSTRAP) once, when the process starts, which is why the tests
// run this program as a child process, one per xDS node. Set
// GRPC_GO_LOG_SEVERITY_LEVEL=info (and GRPC_GO_LOG_VERBOSITY_LEVEL=99) to see
// grpc's own logs, xDS client included, on stderr.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
	_ "google.golang.org/grpc/xds" // registers the xds:/// resolver and the xDS balancers
)

func main() {
	target := flag.String("target", "xds:///greeter.default", "the target to dial")
	rate := flag.Float64("rate", 100, "RPCs per second; 0 sends them back to back")
	timeout := flag.Duration("timeout", time.Second, "deadline of one RPC")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		// The test ends the client by closing stdin, so a test that dies
		// without cleaning up leaves no client behind.
		io.Copy(io.Discard, os.Stdin)
		cancel()
	}()

	if err := run(ctx, *target, *rate, *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "testclient:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, target string, rate float64, timeout time.Duration) error {
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	client := testgrpc.NewTestServiceClient(conn)

	var tick <-chan time.Time
	if rate > 0 {
		t := time.NewTicker(time.Duration(float64(time.Second) / rate))
		defer t.Stop()
		tick = t.C
	}
	for {
		if tick != nil {
			select {
			case <-ctx.Done():
				return nil
			case <-tick:
			}
		} else if ctx.Err() != nil {
			return nil
		}
		line := call(ctx, client, timeout)
		if ctx.Err() != nil {
			// The RPC may have failed because we are stopping: not a result.
			return nil
		}
		// os.Stdout is unbuffered: every line reaches the test at once.
		if _, err := fmt.Fprintln(os.Stdout, line); err != nil {
			return nil // the test stopped reading
		}
	}
}

// call sends one UnaryCall and describes its outcome in one line.
func call(ctx context.Context, client testgrpc.TestServiceClient, timeout time.Duration) string {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	resp, err := client.UnaryCall(ctx, &testgrpc.SimpleRequest{FillServerId: true})
	if err != nil {
		st := status.Convert(err)
		return fmt.Sprintf("err %s %s", st.Code(), oneLine(st.Message()))
	}
	return "ok " + resp.GetServerId()
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
