//go:build unix

package main

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/convlens/convlens/cmd/convlens/internal/audit"
)

// startCommand runs this test binary as the convlens command (see TestMain).
func startCommand(t *testing.T, args ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "CONVLENS_TEST_AS_COMMAND=1", "GOMLX_BACKEND=go")
	var errOut bytes.Buffer
	cmd.Stderr = &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, &errOut
}

// Killed with SIGKILL at random moments and started again with the same
// arguments each time, the audit ends with every image exactly once: no
// duplicate, no gap. Between runs the file is readable and never shrinks.
func TestAuditSurvivesKillsAndResumes(t *testing.T) {
	dir := auditArchive(t)
	out := filepath.Join(t.TempDir(), "r.parquet")
	args := auditArgs(dir, out, "--batch", "8")
	// How long a whole run takes here: kills are drawn within it.
	whole := time.Now()
	cmd, errOut := startCommand(t, auditArgs(dir, filepath.Join(t.TempDir(), "whole.parquet"), "--batch", "8")...)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("uninterrupted run: %v: %s", err, errOut)
	}
	full := time.Since(whole)
	seed := uint64(time.Now().UnixNano())
	t.Logf("a whole run takes %v; kill times drawn with seed %d", full, seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	prev, midRun, stalled := 0, 0, 0
	for kill := 0; kill < 8 && midRun < 4; kill++ {
		cmd, errOut := startCommand(t, args...)
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		var err error
		var at string
		if kill%2 == 1 {
			// At a random moment, from the start (backend, compile) to
			// near the end: a kill before the first flush lets the next
			// run live longer.
			delay := time.Duration(float64(full) * (0.1 + 0.8*rng.Float64()) * (1 + 0.5*float64(stalled)))
			at = fmt.Sprint(delay)
			select {
			case err = <-exited:
			case <-time.After(delay):
				cmd.Process.Signal(syscall.SIGKILL)
				err = <-exited
			}
		} else {
			// Once the file, read while the run writes it, holds a random
			// number of rows more than before (up to half of what is left:
			// flushes come every 64 rows or so), then a random moment later.
			target := prev + 1 + rng.IntN(max((auditArchiveImages-prev)/2, 1))
			extra := time.Duration(rng.IntN(200)) * time.Millisecond
			at = fmt.Sprintf("%d rows + %v", target, extra)
		poll:
			for {
				select {
				case err = <-exited:
					break poll
				case <-time.After(10 * time.Millisecond):
					ids, rerr := audit.ReadIDs(out)
					if rerr != nil && !os.IsNotExist(rerr) {
						t.Fatalf("reading the file while it is written: %v", rerr)
					}
					if len(ids) >= target {
						time.Sleep(extra)
						cmd.Process.Signal(syscall.SIGKILL)
						err = <-exited
						break poll
					}
				}
			}
		}
		delay := at
		ids, rerr := audit.ReadIDs(out)
		if rerr != nil && !os.IsNotExist(rerr) {
			t.Fatalf("after a kill at %v the file is unreadable: %v", delay, rerr)
		}
		if len(ids) < prev {
			t.Fatalf("after a kill at %v the file holds %d rows, before %d", delay, len(ids), prev)
		}
		if dup := duplicates(ids); len(dup) > 0 {
			t.Fatalf("after a kill at %v: duplicate ids %v", delay, dup)
		}
		t.Logf("run %d killed at %s: %d rows (exit %v)", kill+1, delay, len(ids), err)
		if err == nil {
			if !strings.Contains(errOut.String(), "images/s") {
				t.Errorf("stderr: %s", errOut)
			}
			break // finished before the kill
		}
		if len(ids) > 0 && len(ids) < auditArchiveImages {
			midRun++
		}
		if len(ids) == prev && kill%2 == 1 {
			stalled++
		} else {
			stalled = 0
		}
		prev = len(ids)
	}
	code, stdout, stderr := convlens(t, args...)
	if code != 0 {
		t.Fatalf("final run: exit %d: %s", code, stderr)
	}
	ids, err := audit.ReadIDs(out)
	if err != nil {
		t.Fatal(err)
	}
	if dup := duplicates(ids); len(dup) > 0 {
		t.Errorf("duplicate ids: %v", dup)
	}
	want := make([]string, auditArchiveImages)
	for i := range want {
		want[i] = audit.LesionID(i)
	}
	slices.Sort(ids)
	if !slices.Equal(ids, want) {
		t.Errorf("the file holds %d ids, not the %d images exactly once", len(ids), len(want))
	}
	if midRun == 0 {
		t.Errorf("no kill landed in the middle of a run (between the first and the last row); stdout %q", stdout)
	}
	// The file was compacted at the end: one footer, nothing unreferenced.
	compareWithArrowCount(t, out, auditArchiveImages)
}

func duplicates(ids []string) []string {
	s := slices.Clone(ids)
	slices.Sort(s)
	var dup []string
	for i := 1; i < len(s); i++ {
		if s[i] == s[i-1] {
			dup = append(dup, s[i])
		}
	}
	return dup
}
