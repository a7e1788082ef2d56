package main

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// TestMain lets the test binary serve as the convlens worker the bench starts
// (it re-executes its own binary with childEnv set).
func TestMain(m *testing.M) {
	if spec := os.Getenv(childEnv); spec != "" {
		if err := runChild(spec); err != nil {
			fmt.Printf("err %s\n", oneLine(err.Error()))
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestSmoke runs the bench's quick mode (ResNet-18, batch 1, 2 rounds, 20
// calls of the memory check, the peak RSS of Integrated Gradients on
// ResNet-18 and on tinycnn at batch 64, whose targets fail the run if
// missed): one or two minutes, plus a one-time export of ResNet-18 into
// .cache/bench. It needs Debian's python3-torch, -torchvision,
// -onnx and -opencv, so it runs only with CONVLENS_BENCH_SMOKE=1.
func TestSmoke(t *testing.T) {
	if os.Getenv("CONVLENS_BENCH_SMOKE") != "1" {
		t.Skip("set CONVLENS_BENCH_SMOKE=1 to run the benchmark's smoke mode")
	}
	cfg, err := parseFlags([]string{"-quick"})
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := run(cfg, &out, testLog{t}); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	report := out.String()
	t.Log("\n" + report)
	for _, want := range []string{"| resnet18 | 1 | 2 |", "Top-5 classes in one call", "Peak RSS, batch 8", "20 consecutive Grad-CAM calls", "GFLOP/s",
		"| resnet18 | integratedgradients | 1 |", "| tinycnn | integratedgradients | 64 |"} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if strings.Contains(report, "failed") {
		t.Errorf("a measurement failed")
	}
}

func TestRunsFlag(t *testing.T) {
	var r runsFlag
	if err := r.Set("7,vgg11=5"); err != nil {
		t.Fatal(err)
	}
	if r.forModel("vgg11") != 5 || r.forModel("resnet18") != 7 || r.String() != "7,vgg11=5" {
		t.Errorf("got %+v", r)
	}
	for _, bad := range []string{"", "x", "vgg11=5", "0", "7,vgg11=-1"} {
		if err := r.Set(bad); err == nil {
			t.Errorf("Set(%q) accepted", bad)
		}
	}
}

func TestMedian(t *testing.T) {
	if m := median([]float64{3, 1, 2}); m != 2 {
		t.Errorf("median odd = %v", m)
	}
	if m := median([]float64{4, 1, 2, 3}); m != 2.5 {
		t.Errorf("median even = %v", m)
	}
}

type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
