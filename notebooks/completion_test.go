package notebooks_test

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// completionScript starts the convlens kernel with jupyter_client, runs a
// cell that imports nb, then asks what a reader's Tab and Shift-Tab ask:
// the completions of "nb.Sho" and the documentation of nb.Show.
const completionScript = `
import json, sys
from jupyter_client.manager import start_new_kernel
km, kc = start_new_kernel(kernel_name="gonb", startup_timeout=120)
try:
    kc.execute_interactive('import "github.com/convlens/convlens/notebooks/nb"\n\n%%\nnb.Check(nil)\n', timeout=600)
    code = 'import "github.com/convlens/convlens/notebooks/nb"\n\n%%\nnb.Sho'
    reply = kc.complete(code, len(code), reply=True, timeout=300)["content"]
    doc = 'import "github.com/convlens/convlens/notebooks/nb"\n\n%%\nnb.Show(nil)'
    inspect = kc.inspect(doc, doc.index("Show") + 2, reply=True, timeout=300)["content"]
    print(json.dumps({"matches": reply.get("matches", []), "found": inspect.get("found"),
                      "doc": " ".join(str(v) for v in inspect.get("data", {}).values())[:2000]}))
finally:
    kc.stop_channels()
    km.shutdown_kernel(now=False)  # GoNB then stops its gopls too
`

// TestKernelCompletesAndDocuments checks that the kernel `make notebook`
// installs answers Tab (completion) and Shift-Tab (documentation) for
// convlens' packages, which needs gopls on the kernel's PATH.
func TestKernelCompletesAndDocuments(t *testing.T) {
	enabled(t)
	_, env := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/usr/bin/python3", "-c", completionScript)
	cmd.Env = env
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("asking the kernel: %v\n%s", err, tail(string(out), 3000))
	}
	s := string(out)
	if !strings.Contains(s, `"Show"`) && !strings.Contains(s, `"nb.Show"`) {
		t.Errorf("Tab after nb.Sho does not offer Show:\n%s", tail(s, 2000))
	}
	if !strings.Contains(s, `"found": true`) || !strings.Contains(s, "displays each item") {
		t.Errorf("Shift-Tab on nb.Show does not show its documentation:\n%s", tail(s, 2000))
	}
}
