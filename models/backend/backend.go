// Package backend chooses and starts the compute backend convlens runs on:
// XLA where its PJRT plugin is installed or can be, otherwise the pure-Go
// backend with convlens' fast convolution. It is the only package that may
// reach the network (to install the XLA plugin, only when the download site
// answers within seconds), and it prints nothing: [Default] returns the line
// that says which backend and why, for the command line to print.
package backend

import (
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/convlens/convlens/internal/catch"
	"github.com/convlens/convlens/internal/fastconv"
	"github.com/gomlx/compute"
	"github.com/gomlx/go-xla/compute/xla"
	_ "github.com/gomlx/gomlx/backends/default" // Registers "xla" and "go".
)

// Environment variables that steer [Default].
const (
	// Env keeps its GoMLX meaning: when set ("go", "xla", "xla:cuda", ...) it is used as is.
	Env = compute.ConfigEnvVar
	// NoAutoInstallEnv, when set, stops any attempt to download the XLA plugin.
	NoAutoInstallEnv = xla.NoAutoInstallEnv
)

// xlaInstallTimeout bounds the plugin download, which itself has no timeout
// and can hang on a network that drops traffic silently.
const xlaInstallTimeout = 5 * time.Minute

// xlaSite is where the XLA plugin is downloaded from; it is probed before a download starts.
const xlaSite = "github.com:443"

// Default returns the backend convlens computes on, with one line that
// names it and says why it was chosen; the command line prints that line on
// stderr. The choice:
//
//  1. $GOMLX_BACKEND, if set, as GoMLX itself reads it.
//  2. XLA, if its PJRT plugin is installed.
//  3. XLA after installing its plugin, unless $GOMLX_NO_AUTO_INSTALL is set or
//     the download site cannot be reached within a few seconds (offline
//     machines never wait on a download).
//  4. The pure-Go backend, which runs anywhere.
func Default() (compute.Backend, string, error) {
	if cfg, ok := os.LookupEnv(Env); ok {
		b, err := New(cfg)
		if err != nil {
			return nil, "", fmt.Errorf("backend %s=%q: %w", Env, cfg, err)
		}
		return b, fmt.Sprintf("convlens: backend %s (from $%s)", b.Name(), Env), nil
	}
	xla.EnableAutoInstall(false)
	if len(xla.GetAvailablePlugins()) > 0 {
		if b, err := New("xla"); err == nil {
			return b, fmt.Sprintf("convlens: backend %s (XLA plugin installed)", b.Name()), nil
		}
	}
	why := xlaInstall()
	if why == "" {
		if b, err := New("xla"); err == nil {
			return b, fmt.Sprintf("convlens: backend %s (XLA plugin just installed)", b.Name()), nil
		} else {
			why = fmt.Sprintf("XLA failed to start: %v", err)
		}
	}
	b, err := New("go")
	if err != nil {
		return nil, "", fmt.Errorf("starting the pure-Go backend: %w", err)
	}
	fast := "fast convolution on"
	if os.Getenv(FastConvEnv) == "0" {
		fast = "fast convolution off"
	}
	return b, fmt.Sprintf("convlens: backend %s (pure Go, %s): %s", b.Name(), fast, why), nil
}

// xlaInstall tries to install the XLA plugin and returns why it could not, or "".
func xlaInstall() string {
	if _, ok := os.LookupEnv(NoAutoInstallEnv); ok {
		return fmt.Sprintf("no XLA plugin installed and $%s is set", NoAutoInstallEnv)
	}
	conn, err := net.DialTimeout("tcp", xlaSite, 3*time.Second)
	if err != nil {
		return "no XLA plugin installed and its download site is unreachable (offline)"
	}
	conn.Close()
	done := make(chan error, 1)
	go func() { done <- xla.AutoInstall() }()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Sprintf("installing the XLA plugin failed: %v", firstLine(err.Error()))
		}
		if len(xla.GetAvailablePlugins()) == 0 {
			return "the XLA plugin installer found no plugin for this machine"
		}
		return ""
	case <-time.After(xlaInstallTimeout):
		return fmt.Sprintf("installing the XLA plugin took longer than %v", xlaInstallTimeout)
	}
}

// FastConvEnv, set to "0", turns off the fast convolution of the pure-Go backend.
const FastConvEnv = "CONVLENS_FASTCONV"

// New creates a backend from a GoMLX configuration string ("go",
// "xla", "xla:cuda", ...), turning GoMLX's panic on an unknown name into an
// error. The pure-Go backend comes with convlens' fast convolution (package
// internal/fastconv), 24–67× faster than its own, unless $CONVLENS_FASTCONV is "0",
// and runs at most two ops of a graph at a time, and one while other graphs
// run, unless cfg says otherwise (see [goConfig]).
func New(cfg string) (b compute.Backend, err error) {
	cfg = goConfig(cfg)
	if e := catch.Do(func() { b, err = compute.NewWithConfig(cfg) }); e != nil {
		return nil, e
	}
	if err != nil {
		return nil, err
	}
	if name, _, _ := strings.Cut(cfg, ":"); name == "go" && os.Getenv(FastConvEnv) != "0" {
		b = fastconv.Wrap(b)
	}
	return b, nil
}

// goConfig gives a configuration of the pure-Go backend that names no
// schedule (ops_sequential, ops_parallel or num_executors) convlens' own: two
// executors. The backend then runs the ops of a graph two at a time when it
// runs that graph alone, and one at a time while other executions run
// beside it. Its default, 8 executors, took the slots of the worker pool
// that its matrix multiplication splits its work over: on 2 cores ResNet-18
// Grad-CAM took 65 ms that way and 48 ms one op at a time. Two executors
// keep the pool for the matrix products and still overlap independent ops (a
// backward pass's branches, a residual shortcut): against one op at a time,
// early-layer Grad-CAM went from 0.098 to 0.079 s on ResNet-18 and from 0.228
// to 0.185 s on EfficientNet-B0, on a 2-core Xeon. Forcing ops_parallel
// deadlocked concurrent executions: their executors held every slot of the
// pool and waited in their matrix products for a free one.
func goConfig(cfg string) string {
	name, opts, _ := strings.Cut(cfg, ":")
	if name != "go" {
		return cfg
	}
	for _, o := range []string{"ops_sequential", "ops_parallel", "num_executors"} {
		if strings.Contains(opts, o) {
			return cfg
		}
	}
	if opts == "" {
		return "go:" + goSchedule
	}
	return cfg + "," + goSchedule
}

// goSchedule is convlens' schedule of the pure-Go backend's ops (see goConfig).
const goSchedule = "num_executors=2"

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
