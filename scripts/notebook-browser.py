#!/usr/bin/python3
"""Runs convlens notebooks in a real browser and reports what it saw.

  notebook-browser.py --url http://127.0.0.1:PORT --token TOKEN --out report.json NAME.ipynb...

It drives headless Chromium (Debian's chromium and chromium-driver, through
python3-selenium) against a running Jupyter Notebook server whose kernel is
the convlens GoNB kernel (scripts/notebook-env.sh), as a reader would: for
each notebook it opens the page, runs all cells (Cell > Run All), and waits
for them. Where a notebook has an explorer (nb.Explore) it waits for its
controls, moves the layer control to the first layer, waits for the overlay
to be redrawn, then presses the explorer's Stop button so that the
remaining cells run. Then it checks, in the page:

  - every chart (display.Chart.NotebookHTML) drew on its canvas (non-blank
    pixels) and kept its static picture for pages without scripts;
  - hovering over the chart shows its tooltip;
  - the browser console has no error from convlens' outputs;

saves the notebook (so that its size after a run can be measured), and
writes one JSON report per run: notebooks/browser_test.go reads it and
turns it into test results. It prints progress on stderr.
"""
import argparse
import json
import sys
import time

from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By


def log(*a):
    print("notebook-browser:", *a, file=sys.stderr, flush=True)


def wait(driver, what, script, timeout, interval=0.5):
    """Evaluates script until it returns a truthy value; returns it, or None on timeout."""
    end = time.time() + timeout
    while time.time() < end:
        try:
            v = driver.execute_script(script)
        except WebDriverException as e:
            v = None
            last = str(e)
        if v:
            return v
        time.sleep(interval)
    log("timed out waiting for", what)
    return None


# The state of the notebook's code cells: how many there are, how many have
# run, which are running or queued, and which failed.
CELLS_JS = """
var cells = Jupyter.notebook.get_cells().filter(function (c) { return c.cell_type === 'code'; });
var out = {total: cells.length, done: 0, pending: [], errors: []};
cells.forEach(function (c, i) {
  var p = c.input_prompt_number;
  if (p === '*' ) { out.pending.push(i); } else if (typeof p === 'number') { out.done++; }
  (c.output_area.outputs || []).forEach(function (o) {
    if (o.output_type === 'error') { out.errors.push({cell: i, ename: o.ename, evalue: (o.evalue || '').slice(0, 400)}); }
  });
});
out.connected = !!(Jupyter.notebook.kernel && Jupyter.notebook.kernel.is_connected());
return out;
"""

# Whether an explorer is up: its view and its controls.
EXPLORER_JS = """
var v = document.querySelector('.convlens-explorer-view');
var layer = document.querySelector('select[id$="_layer_select"]');
var stop = document.querySelector('button[id$="_stop_button"]');
if (!v || !layer || !stop) { return null; }
var img = v.querySelector('img.convlens-explorer-overlay');
return {state: v.getAttribute('data-state'), src: img ? img.src.length + ':' + img.src.slice(-64) : '',
        layers: layer.options.length, layer: layer.value};
"""

# Every chart of the page: whether its static picture is there, whether the
# live chart drew, and how many of its canvas pixels are painted.
CHARTS_JS = """
return Array.from(document.querySelectorAll('.convlens-chart')).map(function (box) {
  var live = box.querySelector('.convlens-chart-live');
  var still = box.querySelector('img.convlens-chart-static');
  var canvas = live ? live.querySelector('canvas') : null;
  var painted = 0;
  if (canvas) {
    var ctx = canvas.getContext('2d');
    var d = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
    for (var i = 0; i < d.length; i += 4) {
      if (d[i + 3] > 0 && !(d[i] > 245 && d[i + 1] > 245 && d[i + 2] > 245)) { painted++; }
    }
  }
  return {id: box.getAttribute('data-chart'), drawn: !!(live && live.getAttribute('data-drawn')),
          static: !!(still && still.naturalWidth > 0), canvas: !!canvas, painted: painted,
          width: canvas ? canvas.width : 0, height: canvas ? canvas.height : 0};
});
"""

# Whether the chart with this id shows a tooltip with some text.
TOOLTIP_JS = """
var el = document.getElementById(arguments[0]);
if (!el) { return ''; }
var tips = Array.from(el.querySelectorAll('div')).filter(function (d) {
  return d.style.zIndex === '9999999' && d.style.display !== 'none' && d.style.visibility !== 'hidden' &&
         d.offsetParent !== null && d.textContent.trim().length > 0;
});
return tips.length ? tips[0].textContent.trim().slice(0, 120) : '';
"""


SHOTS = None  # folder for screenshots (--screenshots), or None


def shot(driver, css, name):
    """Saves a screenshot of the first element matching css, when asked to."""
    if not SHOTS:
        return
    try:
        el = driver.find_element(By.CSS_SELECTOR, css)
        driver.execute_script("arguments[0].scrollIntoView({block: 'start'});", el)
        time.sleep(0.3)
        el.screenshot(f"{SHOTS}/{name}.png")
    except WebDriverException as e:
        log("screenshot", name, "failed:", e)


def run_notebook(driver, base, token, name, timeout):
    report = {"notebook": name}
    start = time.time()
    driver.get(f"{base}/notebooks/{name}?token={token}")
    ok = wait(driver, "the kernel", "return !!(window.Jupyter && Jupyter.notebook && Jupyter.notebook.kernel && "
              "Jupyter.notebook.kernel.is_connected());", 120)
    if not ok:
        report["failure"] = "the kernel did not connect"
        return report
    # What the page logs before any cell runs is Jupyter's, not convlens'.
    report["page_console"] = console(driver)
    driver.execute_script("Jupyter.notebook.execute_all_cells();")
    explorer = None
    end = start + timeout
    while time.time() < end:
        cells = driver.execute_script(CELLS_JS)
        if explorer is None:
            e = driver.execute_script(EXPLORER_JS)
            if e:
                explorer = explore(driver, e)
                continue
        if not cells["pending"] and cells["done"] == cells["total"]:
            break
        time.sleep(1)
    else:
        report["failure"] = f"cells still running after {timeout} s: {driver.execute_script(CELLS_JS)}"
    cells = driver.execute_script(CELLS_JS)
    report["cells"] = cells["total"]
    report["executed"] = cells["done"]
    report["errors"] = cells["errors"]
    report["explorer"] = explorer
    report["run_seconds"] = round(time.time() - start, 1)
    time.sleep(1)  # let the last charts draw
    charts = driver.execute_script(CHARTS_JS)
    for i, c in enumerate(charts):
        c["tooltip"] = hover(driver, c["id"]) if c["canvas"] else ""
        shot(driver, f'[data-chart="{c["id"]}"]', f"{name}-chart{i}")
    report["charts"] = charts
    driver.execute_script("Jupyter.notebook.save_notebook();")
    wait(driver, "the save", "return !Jupyter.notebook.dirty;", 20)
    report["seconds"] = round(time.time() - start, 1)
    try:
        driver.execute_script("Jupyter.notebook.kernel.kill();")
    except WebDriverException:
        pass
    return report


def console(driver):
    return [{"level": e["level"], "message": e["message"][:600]} for e in driver.get_log("browser")
            if e["level"] in ("SEVERE", "WARNING")]


def hover(driver, chart_id):
    """Moves the mouse over the middle of the chart and returns its tooltip's text."""
    el = driver.find_element(By.ID, chart_id)
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", el)
    time.sleep(0.3)
    for dx, dy in ((0, 0), (-40, 10), (40, -10), (-120, 30)):
        ActionChains(driver).move_to_element_with_offset(el, dx, dy).perform()
        time.sleep(0.4)
        text = driver.execute_script(TOOLTIP_JS, chart_id)
        if text:
            return text
    return ""


def change(driver, select, value, before):
    """Sets a select control of the explorer and waits for the view to be
    redrawn; returns the new view's state, or None."""
    driver.execute_script("""
var s = document.querySelector(arguments[0]);
s.value = arguments[1];
s.dispatchEvent(new Event('change'));
""", select, value)
    return wait(driver, "the explorer's redraw after " + select,
                "var e = (function () {" + EXPLORER_JS + "})(); return e && e.src !== arguments[0] ? e : null;"
                .replace("arguments[0]", json.dumps(before["src"])), 90)


def explore(driver, first):
    """Moves the explorer's layer control to the first layer and waits for
    the view to be redrawn; then picks another image, which also rebuilds the
    target control; then stops the explorer."""
    log("explorer up:", first["state"])
    shot(driver, ".convlens-explorer-view", "explorer-first")
    out = {"before": first}
    after = change(driver, 'select[id$="_layer_select"]', "0", first)
    out["after"] = after
    out["changed"] = bool(after) and after["state"] != first["state"]
    log("explorer redrawn:", after and after["state"])
    shot(driver, ".convlens-explorer-view", "explorer-layer0")
    if after:
        image = change(driver, 'select[id$="_image_select"]', "2", after)
        targets = driver.execute_script(
            "var t = document.querySelectorAll('select[id*=\"_target_select_\"]');"
            "return t.length === 1 ? t[0].id : t.length;")
        out["image"] = image
        out["image_changed"] = bool(image) and image["state"] != after["state"] and str(targets).endswith("_2")
        log("explorer on another image:", image and image["state"], "target control", targets)
    driver.execute_script("document.querySelector('button[id$=\"_stop_button\"]').click();")
    out["stopped"] = bool(wait(driver, "the explorer to stop",
                               "return !!document.querySelector('.convlens-explorer-summary');", 60))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--token", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--profile", required=True)
    ap.add_argument("--timeout", type=float, default=300, help="seconds a notebook may run")
    ap.add_argument("--screenshots", help="folder to save screenshots of the charts and the explorer in")
    ap.add_argument("notebooks", nargs="+")
    a = ap.parse_args()
    global SHOTS
    SHOTS = a.screenshots
    opts = Options()
    opts.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--window-size=1280,1000", "--user-data-dir=" + a.profile):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    driver.set_script_timeout(30)
    reports = []
    try:
        for name in a.notebooks:
            log("running", name)
            r = run_notebook(driver, a.url, a.token, name, a.timeout)
            r["console"] = console(driver)
            log(name, "done in", r.get("seconds"), "s")
            reports.append(r)
            with open(a.out, "w") as f:
                json.dump(reports, f, indent=1)
    finally:
        driver.quit()
    return 0


if __name__ == "__main__":
    sys.exit(main())
