package backend

import (
	"os"
	"strings"
	"testing"
)

func TestGoConfigSchedule(t *testing.T) {
	for cfg, want := range map[string]string{
		"go":                 "go:num_executors=2",
		"go:parallelism=2":   "go:parallelism=2,num_executors=2",
		"go:ops_parallel":    "go:ops_parallel",
		"go:ops_sequential":  "go:ops_sequential",
		"go:num_executors=4": "go:num_executors=4",
		"xla":                "xla",
		"xla:cpu":            "xla:cpu",
	} {
		if got := goConfig(cfg); got != want {
			t.Errorf("goConfig(%q) = %q, want %q", cfg, got, want)
		}
	}
	for _, cfg := range []string{"go", "go:parallelism=2", "go:ops_parallel"} {
		b, err := New(cfg)
		if err != nil {
			t.Fatalf("New(%q): %v", cfg, err)
		}
		b.Finalize()
	}
}

func TestDefaultBackend(t *testing.T) {
	t.Setenv(Env, "go")
	b, note, err := Default()
	if err != nil || b == nil || !strings.Contains(note, "from $GOMLX_BACKEND") {
		t.Errorf("GOMLX_BACKEND=go: %v %q", err, note)
	}
	t.Setenv(Env, "no-such-backend")
	if _, _, err := Default(); err == nil || !strings.Contains(err.Error(), "no-such-backend") {
		t.Errorf("unknown backend: err = %v", err)
	}
	os.Unsetenv(Env)
	// No plugin anywhere and downloads disabled: the pure-Go backend, saying why.
	t.Setenv("PJRT_PLUGIN_LIBRARY_PATH", t.TempDir())
	t.Setenv("HOME", t.TempDir())
	t.Setenv(NoAutoInstallEnv, "1")
	b, note, err = Default()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(note, "pure Go") || !strings.Contains(note, "GOMLX_NO_AUTO_INSTALL") {
		t.Errorf("note %q does not name the pure-Go backend and why", note)
	}
}
