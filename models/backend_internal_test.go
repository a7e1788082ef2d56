package models

import "testing"

func TestGoConfigRunsOpsSequentially(t *testing.T) {
	for cfg, want := range map[string]string{
		"go":                "go:ops_sequential",
		"go:parallelism=2":  "go:parallelism=2,ops_sequential",
		"go:ops_parallel":   "go:ops_parallel",
		"go:ops_sequential": "go:ops_sequential",
		"xla":               "xla",
		"xla:cpu":           "xla:cpu",
	} {
		if got := goConfig(cfg); got != want {
			t.Errorf("goConfig(%q) = %q, want %q", cfg, got, want)
		}
	}
	for _, cfg := range []string{"go", "go:parallelism=2", "go:ops_parallel"} {
		b, err := NewBackend(cfg)
		if err != nil {
			t.Fatalf("NewBackend(%q): %v", cfg, err)
		}
		b.Finalize()
	}
}
