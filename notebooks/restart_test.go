package notebooks_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// restartScript runs every code cell of each notebook it is given as the
// first cell after a kernel restart: one GoNB kernel per notebook (started
// in the notebook's folder, as Jupyter starts it), restarted before each
// cell but the first. It prints one JSON line per cell: the notebook, the
// cell's id, the reply's status and execution count, the seconds the
// restart and the cell took, and the cell's outputs in the notebook's
// format, pictures and HTML cut down to what the checks read.
const restartScript = `
import html, json, os, re, sys, time
from jupyter_client.manager import start_new_kernel

def brief(content):
    data = {}
    for mime, v in content.get("data", {}).items():
        if mime.startswith("image/"):
            v = ""
        elif mime == "text/html" and "gonb-err" in v:
            # GoNB's compile errors: their text, without the page's styles.
            v = re.sub(r"(?s)<style>.*?</style>", "", v)
            v = "gonb-err: " + " ".join(html.unescape(re.sub(r"<[^>]+>", " ", v)).split())
        elif mime == "text/html":
            v = "<html>"
        data[mime] = v
    return data

for path in sys.argv[1:]:
    with open(path, encoding="utf-8") as f:
        nb = json.load(f)
    km, kc = start_new_kernel(kernel_name="gonb", startup_timeout=120, cwd=os.path.dirname(os.path.abspath(path)))
    try:
        first = True
        for c in nb["cells"]:
            if c["cell_type"] != "code":
                continue
            start = time.time()
            if not first:
                km.restart_kernel(now=False)
                kc.wait_for_ready(timeout=120)
            first = False
            restart = time.time() - start
            outputs = []
            def hook(msg):
                t, content = msg["msg_type"], msg["content"]
                if t == "stream":
                    outputs.append({"output_type": t, "name": content["name"], "text": content["text"]})
                elif t in ("display_data", "execute_result", "update_display_data"):
                    outputs.append({"output_type": t, "data": brief(content)})
                elif t == "error":
                    outputs.append({"output_type": t, "ename": content["ename"], "evalue": content["evalue"]})
            source = "".join(c["source"])
            reply = kc.execute_interactive(source, timeout=900, output_hook=hook, allow_stdin=False)["content"]
            print(json.dumps({"notebook": os.path.basename(path), "id": c["id"], "status": reply["status"],
                              "execution_count": reply.get("execution_count"), "restart": restart,
                              "seconds": time.time() - start - restart, "outputs": outputs}), flush=True)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=False)
`

// restarted is one line of restartScript's output.
type restarted struct {
	Notebook       string          `json:"notebook"`
	ID             string          `json:"id"`
	Status         string          `json:"status"`
	ExecutionCount *int            `json:"execution_count"`
	Restart        float64         `json:"restart"`
	Seconds        float64         `json:"seconds"`
	Outputs        json.RawMessage `json:"outputs"`
}

// instruction is what a cell that cannot run first may print instead, as
// its only output: one line that names the cell to run first.
var instruction = regexp.MustCompile(`(?i)^[^\n]*\brun\b[^\n]*\bcell\b[^\n]*$`)

// TestEachCellRunsFirstAfterARestart checks the promise of the notebooks'
// set-up cells for real: whichever cell a reader runs first after a kernel
// restart works, or prints one line that names the cell to run. Each code
// cell of each notebook runs alone in a freshly restarted GoNB kernel (the
// kernel of `make notebook`, offline); it must succeed and produce what its
// metadata promises (as TestNotebooks checks of a full run), or print only
// such a line. One kernel serves each notebook, restarted between cells.
func TestEachCellRunsFirstAfterARestart(t *testing.T) {
	enabled(t)
	_, env := setup(t)
	runEachCellFirst(t, env, notebooks(t))
}

// runEachCellFirst runs each code cell of the notebooks paths as the first
// after a restart and checks what it gives.
func runEachCellFirst(t *testing.T, env, paths []string) {
	t.Helper()
	committed := map[string]map[string]cell{} // notebook: cell id: cell
	for _, path := range paths {
		nb, err := readNotebook(path)
		if err != nil {
			t.Fatal(err)
		}
		cells := map[string]cell{}
		for _, c := range nb.Cells {
			if c.Type == "code" {
				cells[c.ID] = c
			}
		}
		committed[filepath.Base(path)] = cells
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*budget)
	defer cancel()
	start := time.Now()
	cmd := exec.CommandContext(ctx, "/usr/bin/python3", append([]string{"-c", restartScript}, paths...)...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	took := time.Since(start)
	ran := map[string]int{}
	perNotebook := map[string]float64{}
	sc := bufio.NewScanner(&stdout)
	sc.Buffer(nil, 64<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if !bytes.HasPrefix(line, []byte("{")) {
			continue
		}
		var r restarted
		if err := json.Unmarshal(line, &r); err != nil {
			t.Fatalf("reading the driver's output: %v\n%.500s", err, line)
		}
		c, ok := committed[r.Notebook][r.ID]
		if !ok {
			t.Fatalf("the driver ran cell %s of %s, which has no such code cell", r.ID, r.Notebook)
		}
		ran[r.Notebook]++
		perNotebook[r.Notebook] += r.Restart + r.Seconds
		where := fmt.Sprintf("%s cell %s, run first after a restart (restart %.1fs, cell %.1fs)", r.Notebook, r.ID, r.Restart, r.Seconds)
		if err := json.Unmarshal(r.Outputs, &c.Outputs); err != nil {
			t.Fatalf("%s: outputs: %v", where, err)
		}
		if line, ok := oneLine(c); ok && instruction.MatchString(line) {
			t.Logf("%s says what to run first: %s", where, line)
			continue
		}
		c.ExecutionCount = r.ExecutionCount
		if r.Status != "ok" {
			t.Errorf("%s: the kernel replied %q", where, r.Status)
		}
		checkCell(t, where, c)
	}
	var times []string
	for _, path := range paths {
		name := filepath.Base(path)
		if ran[name] != len(committed[name]) {
			t.Errorf("%s: %d of its %d code cells ran", name, ran[name], len(committed[name]))
		}
		times = append(times, fmt.Sprintf("%s %d cells %.0fs", name, ran[name], perNotebook[name]))
	}
	t.Logf("each cell first after a restart: %s; total %v", strings.Join(times, ", "), took.Round(time.Second))
	if err != nil {
		t.Fatalf("the kernel driver failed after %v: %v\n%s", took.Round(time.Second), err, tail(stderr.String(), 6000))
	}
}

// oneLine returns the cell's output when it is a single line of text and
// nothing else: no picture, no HTML, at most one stream or error.
func oneLine(c cell) (string, bool) {
	var s strings.Builder
	for _, o := range c.Outputs {
		switch o.Type {
		case "stream":
			s.WriteString(text(o.Text))
		case "error":
			s.WriteString(o.EValue)
		default:
			return "", false
		}
	}
	line := strings.TrimSpace(s.String())
	return line, line != "" && !strings.Contains(line, "\n")
}
