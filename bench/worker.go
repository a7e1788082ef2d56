package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Timeouts for a worker's start (model loading) and for one command.
var (
	startTimeout = 10 * time.Minute
	callTimeout  = 20 * time.Minute
)

// worker is a persistent child process that takes one command per line on
// stdin and answers each with one line on stdout: "ok ..." or "err ...".
type worker struct {
	label  string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string
	stderr *tail
	info   string // the rest of its "ready" line
}

// startWorker starts cmd and waits for its "ready" line.
func startWorker(label string, cmd *exec.Cmd, echo io.Writer) (*worker, error) {
	w := &worker{label: label, cmd: cmd, lines: make(chan string, 16), stderr: &tail{echo: echo}}
	var err error
	if w.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = w.stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", label, err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			w.lines <- sc.Text()
		}
		close(w.lines)
	}()
	line, err := w.read(startTimeout)
	if err == nil && !strings.HasPrefix(line, "ready") {
		err = fmt.Errorf("%s: %s", label, line)
	}
	if err != nil {
		w.kill()
		return nil, err
	}
	w.info = strings.TrimSpace(strings.TrimPrefix(line, "ready"))
	return w, nil
}

// read returns the next protocol line, passing other output to stderr's tail.
func (w *worker) read(timeout time.Duration) (string, error) {
	deadline := time.After(timeout)
	for {
		select {
		case l, ok := <-w.lines:
			if !ok {
				err := w.cmd.Wait()
				return "", fmt.Errorf("%s exited (%v): %s", w.label, err, w.stderr.String())
			}
			if strings.HasPrefix(l, "ok") || strings.HasPrefix(l, "err") || strings.HasPrefix(l, "ready") {
				return l, nil
			}
			fmt.Fprintln(w.stderr, l)
		case <-deadline:
			return "", fmt.Errorf("%s: no answer within %v: %s", w.label, timeout, w.stderr.String())
		}
	}
}

// call sends one command and returns the text after "ok".
func (w *worker) call(format string, args ...any) (string, error) {
	cmd := fmt.Sprintf(format, args...)
	if _, err := fmt.Fprintln(w.stdin, cmd); err != nil {
		return "", fmt.Errorf("%s: %s: %w: %s", w.label, cmd, err, w.stderr.String())
	}
	line, err := w.read(callTimeout)
	if err != nil {
		return "", err
	}
	if rest, ok := strings.CutPrefix(line, "err"); ok {
		return "", fmt.Errorf("%s: %s: %s", w.label, cmd, strings.TrimSpace(rest))
	}
	return strings.TrimSpace(strings.TrimPrefix(line, "ok")), nil
}

// seconds sends a timed command and returns the time the worker measured.
func (w *worker) seconds(format string, args ...any) (float64, error) {
	s, err := w.call(format, args...)
	if err != nil {
		return 0, err
	}
	return strconv.ParseFloat(s, 64)
}

// status returns a memory field of /proc/PID/status ("VmHWM", "VmRSS") in bytes.
func (w *worker) status(field string) (int64, error) {
	return procStatus(w.cmd.Process.Pid, field)
}

func procStatus(pid int, field string) (int64, error) {
	return procStatusFile(fmt.Sprintf("/proc/%d/status", pid), field)
}

// close asks the worker to quit and kills it if it does not.
func (w *worker) close() {
	if w == nil {
		return
	}
	fmt.Fprintln(w.stdin, "quit")
	w.stdin.Close()
	done := make(chan struct{})
	go func() {
		for range w.lines {
		}
		w.cmd.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		w.kill()
	}
}

func (w *worker) kill() {
	if w.cmd.Process != nil {
		w.cmd.Process.Kill()
	}
}

// tail keeps the last 4 KiB written to it (a worker's stderr), optionally echoing it.
type tail struct {
	mu   sync.Mutex
	buf  []byte
	echo io.Writer
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.echo != nil {
		t.echo.Write(p)
	}
	t.buf = append(t.buf, p...)
	if len(t.buf) > 4096 {
		t.buf = t.buf[len(t.buf)-4096:]
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(bytes.TrimSpace(t.buf))
}
