package notebooks_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/convlens/convlens/internal/testutil"
)

// browserBudget is how long running every notebook in the browser may take
// on the 2-core machines CI runs on (the issue asks for about 4 minutes;
// this leaves room for a loaded machine before failing).
const browserBudget = 8 * time.Minute

// browserReport is what scripts/notebook-browser.py writes for one notebook.
type browserReport struct {
	Notebook string  `json:"notebook"`
	Failure  string  `json:"failure"`
	Cells    int     `json:"cells"`
	Executed int     `json:"executed"`
	Seconds  float64 `json:"seconds"`
	Errors   []struct {
		Cell   int    `json:"cell"`
		EName  string `json:"ename"`
		EValue string `json:"evalue"`
	} `json:"errors"`
	Charts []struct {
		ID      string `json:"id"`
		Drawn   bool   `json:"drawn"`
		Static  bool   `json:"static"`
		Canvas  bool   `json:"canvas"`
		Painted int    `json:"painted"`
		Width   int    `json:"width"`
		Height  int    `json:"height"`
		Tooltip string `json:"tooltip"`
	} `json:"charts"`
	Explorer *struct {
		Changed      bool `json:"changed"`
		ImageChanged bool `json:"image_changed"`
		Stopped      bool `json:"stopped"`
		Before       struct {
			State string `json:"state"`
		} `json:"before"`
		After *struct {
			State string `json:"state"`
		} `json:"after"`
	} `json:"explorer"`
	Console     []consoleEntry `json:"console"`
	PageConsole []consoleEntry `json:"page_console"`
}

type consoleEntry struct {
	Level   string `json:"level"`
	Message string `json:"message"`
}

// fromConvlens matches console messages that concern what convlens puts in
// the page: its charts, echarts, its explorer, or a script error in an
// output. Jupyter's own messages (a missing nbextension, its comm manager)
// are reported but do not fail the test.
var fromConvlens = regexp.MustCompile(`(?i)convlens|echarts|Uncaught|is not defined|SyntaxError`)

// TestNotebooksInBrowser runs every notebook in a real browser: the Jupyter
// Notebook server with the GoNB kernel of `make notebook`, driven by
// headless Chromium (scripts/notebook-browser.py, with Debian's
// chromium-driver and python3-selenium). For each notebook it runs all cells,
// and checks that every cell ran without error and produced what it
// promises (as TestNotebooks does), that every chart drew on its canvas,
// kept its static picture and shows a tooltip on hover, that moving the
// explorer's layer control redraws its overlay (and picking another image
// redraws it with a new target list), and that the console has no error
// from convlens' outputs. It logs each notebook's size once saved
// after the run.
//
// It runs under CI=true or CONVLENS_BROWSER=1; missing tools fail it in CI
// and skip it elsewhere.
func TestNotebooksInBrowser(t *testing.T) {
	if os.Getenv("CI") != "true" && os.Getenv("CONVLENS_BROWSER") != "1" {
		t.Skip("running the notebooks in Chromium takes minutes: set CONVLENS_BROWSER=1 (CI=true runs it too)")
	}
	var missing []string
	for _, p := range []string{"/usr/bin/chromium", "/usr/bin/chromedriver"} {
		if _, err := os.Stat(p); err != nil {
			missing = append(missing, p)
		}
	}
	if err := exec.Command("/usr/bin/python3", "-c", "import selenium").Run(); err != nil {
		missing = append(missing, "python3-selenium")
	}
	if len(missing) > 0 {
		testutil.Unavailable(t, "the browser test needs "+strings.Join(missing, ", ")+" (scripts/deps.sh installs them: chromium, chromium-driver, python3-selenium)")
	}
	root, env := setup(t)
	work := t.TempDir()
	nbDir := filepath.Join(work, "notebooks")
	if err := os.MkdirAll(nbDir, 0o755); err != nil {
		t.Fatal(err)
	}
	// The browser saves the notebooks it ran: run copies, so that the
	// committed ones stay as they are.
	var names []string
	hasExplorer := map[string]bool{}
	for _, path := range notebooks(t) {
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Base(path)
		names = append(names, name)
		hasExplorer[name] = strings.Contains(string(raw), "nb.Explore(")
		if err := os.WriteFile(filepath.Join(nbDir, name), raw, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	port := freePort(t)
	token := randomToken(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	serverLog, err := os.Create(filepath.Join(work, "jupyter.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer serverLog.Close()
	server := exec.Command("jupyter", "notebook", "--no-browser", "--ip=127.0.0.1", fmt.Sprintf("--port=%d", port),
		"--NotebookApp.token="+token, "--notebook-dir="+nbDir, "--allow-root")
	server.Env = append(env, "JUPYTER_CONFIG_DIR="+filepath.Join(work, "config"), "JUPYTER_RUNTIME_DIR="+filepath.Join(work, "runtime"))
	server.Stdout, server.Stderr = serverLog, serverLog
	server.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := server.Start(); err != nil {
		t.Fatalf("starting Jupyter: %v", err)
	}
	defer func() {
		_ = syscall.Kill(-server.Process.Pid, syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- server.Wait() }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = syscall.Kill(-server.Process.Pid, syscall.SIGKILL)
			<-done
		}
	}()
	if !waitHTTP(base+"/api/status?token="+token, 90*time.Second) {
		log, _ := os.ReadFile(serverLog.Name())
		t.Fatalf("Jupyter did not answer on %s:\n%s", base, tail(string(log), 3000))
	}

	reportPath := filepath.Join(work, "report.json")
	ctx, cancel := context.WithTimeout(context.Background(), 2*browserBudget)
	defer cancel()
	start := time.Now()
	args := []string{filepath.Join(root, "scripts", "notebook-browser.py"), "--url", base, "--token", token,
		"--out", reportPath, "--profile", filepath.Join(work, "chromium"), "--timeout", "420"}
	driver := exec.CommandContext(ctx, "/usr/bin/python3", append(args, names...)...)
	out, err := driver.CombinedOutput()
	took := time.Since(start)
	t.Logf("browser run of %d notebooks: %v", len(names), took.Round(time.Second))
	raw, rerr := os.ReadFile(reportPath)
	if err != nil || rerr != nil {
		log, _ := os.ReadFile(serverLog.Name())
		t.Fatalf("scripts/notebook-browser.py: %v %v\n%s\nJupyter:\n%s", err, rerr, tail(string(out), 4000), tail(string(log), 3000))
	}
	var reports []browserReport
	if err := json.Unmarshal(raw, &reports); err != nil {
		t.Fatal(err)
	}
	if len(reports) != len(names) {
		t.Errorf("the browser ran %d of %d notebooks:\n%s", len(reports), len(names), tail(string(out), 3000))
	}
	for _, r := range reports {
		t.Run(strings.TrimSuffix(r.Notebook, ".ipynb"), func(t *testing.T) {
			checkBrowser(t, r, hasExplorer[r.Notebook])
			saved := filepath.Join(nbDir, r.Notebook)
			if fi, err := os.Stat(saved); err == nil {
				t.Logf("%s: ran in %.0f s; saved after the run: %d KB", r.Notebook, r.Seconds, fi.Size()/1024)
			}
			if nb, err := readNotebook(saved); err != nil {
				t.Errorf("reading the notebook the browser saved: %v", err)
			} else {
				check(t, nb)
			}
			// What git stores of the notebook after this run (the clean filter's
			// output) is the committed file: running it leaves git status clean.
			strip := exec.Command("/usr/bin/python3", filepath.Join(root, "scripts", "notebook-strip.py"))
			in, err := os.Open(saved)
			if err != nil {
				t.Fatal(err)
			}
			defer in.Close()
			strip.Stdin = in
			stripped, err := strip.Output()
			committed, cerr := os.ReadFile(filepath.Join(root, "notebooks", r.Notebook))
			if err != nil || cerr != nil {
				t.Errorf("stripping the saved notebook: %v %v", err, cerr)
			} else if string(stripped) != string(committed) {
				t.Errorf("the notebook saved after the run, stripped by the git filter, differs from the committed one: git status would show it modified")
			}
		})
	}
	if took > browserBudget {
		t.Errorf("running the notebooks in the browser took %v, over the %v budget", took.Round(time.Second), browserBudget)
	}
}

// checkBrowser turns one notebook's report into test results.
func checkBrowser(t *testing.T, r browserReport, explorer bool) {
	t.Helper()
	if r.Failure != "" {
		t.Errorf("%s", r.Failure)
	}
	if r.Executed != r.Cells {
		t.Errorf("%d of %d code cells ran", r.Executed, r.Cells)
	}
	for _, e := range r.Errors {
		t.Errorf("code cell %d: %s: %s", e.Cell, e.EName, e.EValue)
	}
	for _, c := range r.Charts {
		switch {
		case !c.Drawn || !c.Canvas:
			t.Errorf("chart %s was not drawn", c.ID)
		case c.Painted < c.Width*c.Height/100:
			t.Errorf("chart %s is blank: %d of %dx%d canvas pixels painted", c.ID, c.Painted, c.Width, c.Height)
		}
		if !c.Static {
			t.Errorf("chart %s has no static picture for pages without scripts", c.ID)
		}
		if c.Tooltip == "" {
			t.Errorf("chart %s shows no tooltip on hover", c.ID)
		}
	}
	if explorer {
		switch e := r.Explorer; {
		case e == nil:
			t.Error("the explorer's controls never appeared")
		case !e.Changed:
			t.Errorf("moving the explorer's layer control did not redraw it (state before: %s)", e.Before.State)
		case !e.ImageChanged:
			t.Error("picking another image in the explorer did not redraw it with a new target control")
		case !e.Stopped:
			t.Error("the explorer's Stop button did not stop it")
		default:
			t.Logf("explorer: %s -> %s", e.Before.State, e.After.State)
		}
	}
	seen := map[string]bool{}
	for _, c := range r.PageConsole {
		seen[c.Message] = true
	}
	for _, c := range r.Console {
		if seen[c.Message] {
			continue
		}
		if c.Level == "SEVERE" && fromConvlens.MatchString(c.Message) {
			t.Errorf("console error: %s", c.Message)
		} else {
			t.Logf("console (%s, not from convlens' outputs): %s", c.Level, tail(c.Message, 300))
		}
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func randomToken(t *testing.T) string {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// waitHTTP waits until url answers 200.
func waitHTTP(url string, timeout time.Duration) bool {
	end := time.Now().Add(timeout)
	for time.Now().Before(end) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return true
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	return false
}
