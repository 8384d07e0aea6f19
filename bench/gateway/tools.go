package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
)

// caddyModule is the Caddy the issue names.
const caddyModule = "github.com/caddyserver/caddy/v2/cmd/caddy@v2.11.9"

// tools are the programs a run needs, found or installed.
type tools struct {
	wrk, nginx, caddy string
}

// ensureTools finds wrk, nginx and Caddy, installing what is missing: wrk
// and nginx from Debian's packages (apt-get, as root or through sudo),
// Caddy with go install into a cache directory of its own.
func ensureTools(ctx context.Context, progress io.Writer) (tools, error) {
	var t tools
	var missing []string
	for _, p := range []struct {
		name string
		path *string
	}{{"wrk", &t.wrk}, {"nginx", &t.nginx}} {
		if path, err := lookPath(p.name); err == nil {
			*p.path = path
		} else {
			missing = append(missing, p.name)
		}
	}
	if len(missing) > 0 {
		fmt.Fprintf(progress, "installing %v from Debian's packages\n", missing)
		if err := aptInstall(ctx, progress, missing...); err != nil {
			return t, err
		}
		for _, p := range []struct {
			name string
			path *string
		}{{"wrk", &t.wrk}, {"nginx", &t.nginx}} {
			path, err := lookPath(p.name)
			if err != nil {
				return t, fmt.Errorf("%s is still not on PATH (or in /usr/sbin) after apt-get install", p.name)
			}
			*p.path = path
		}
	}

	cache, err := os.UserCacheDir()
	if err != nil {
		return t, err
	}
	bin := filepath.Join(cache, "sluice-bench", "bin")
	t.caddy = filepath.Join(bin, "caddy")
	if _, err := os.Stat(t.caddy); err != nil {
		fmt.Fprintf(progress, "installing %s into %s (a minute or two)\n", caddyModule, bin)
		cmd := exec.CommandContext(ctx, "go", "install", caddyModule)
		cmd.Env = append(os.Environ(), "GOBIN="+bin)
		cmd.Stdout, cmd.Stderr = progress, progress
		if err := cmd.Run(); err != nil {
			return t, fmt.Errorf("go install %s: %w", caddyModule, err)
		}
	}
	return t, nil
}

// lookPath finds a program on PATH or in /usr/sbin, where Debian puts nginx.
func lookPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	p := filepath.Join("/usr/sbin", name)
	if _, err := os.Stat(p); err != nil {
		return "", err
	}
	return p, nil
}

func aptInstall(ctx context.Context, progress io.Writer, pkgs ...string) error {
	var prefix []string
	if os.Geteuid() != 0 {
		sudo, err := exec.LookPath("sudo")
		if err != nil {
			return fmt.Errorf("%v missing, and installing them needs root: run `apt-get install %v` as root, or run this as root", pkgs, pkgs)
		}
		prefix = []string{sudo, "-n"}
	}
	for _, args := range [][]string{
		{"apt-get", "update", "-q"},
		append([]string{"apt-get", "install", "-y", "-q", "--no-install-recommends"}, pkgs...),
	} {
		args = append(prefix, args...)
		cmd := exec.CommandContext(ctx, args[0], args[1:]...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		cmd.Stdout, cmd.Stderr = progress, progress
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%v: %w", args, err)
		}
	}
	return nil
}
