"""Browser check of the analysis notebooks: JupyterLab in headless Chromium runs each notebook on the `ditgaze` kernel,
checks that its widgets render, drags one slider and checks that the renders and readings change, and saves screenshots.

Run from a repository whose pipeline has run (data/synthetic, runs/ and params.yaml present):

    bash scripts/browser_check.sh /tmp/browser_shots          # installs Chromium (apt) and playwright (pip) if missing
    .venv/bin/python scripts/browser_check.py /tmp/browser_shots   # when both are there

It uses Debian's /usr/bin/chromium (never `playwright install`, which downloads browsers), starts `jupyter lab --no-browser`
on a free localhost port with a token, in a temporary folder holding copies of analysis/*.ipynb and links to the repo's data,
runs and params (so nothing in the repo is written), with PYTHONPATH set to the repo (the kernel imports its ditgaze).
Screenshots per notebook: <name>_1_static.png (the first figure), <name>_2_widgets.png, <name>_3_after_slider.png.
Exits non-zero, naming the notebook and the step, on any failure. Not run in CI (it needs a browser and a trained pipeline).
"""
import argparse, json, os, secrets, shutil, socket, subprocess, sys, tempfile, time, urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]   # without the network flags Chromium's connections are refused on a closed network
SLIDERS = {"gaze_sweep": "gaze yaw", "orthogonality": "gaze yaw"}   # the slider each check drags (its description)
SETTINGS = {   # JupyterLab user settings: no news or update checks; every cell in the DOM (windowing would drop those out of view)
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}
STATE_JS = """() => {
  const w = window.jupyterapp.shell.currentWidget;
  if (!w || !w.content || !w.content.model || !w.sessionContext) return null;
  let n = 0, pending = 0; const errors = [];
  for (const c of w.content.model.cells) {
    if (c.type !== 'code') continue;
    n++; if (c.executionCount === null) pending++;
    for (const o of c.outputs.toJSON()) if (o.output_type === 'error') errors.push(o.ename + ': ' + o.evalue);
  }
  const k = w.sessionContext.session && w.sessionContext.session.kernel;
  return {path: w.context.path, n, pending, errors, kernel: k ? k.status : 'none', name: k ? k.name : ''};
}"""
OUTPUT_JS = """() => {   // what the widgets show: a checksum of every image's pixels and every HTML widget's text
  const pix = [...document.querySelectorAll('.jp-OutputArea img.widget-image')].map(e => {
    if (!e.complete || !e.naturalWidth) return -1;
    const c = document.createElement('canvas'); c.width = e.naturalWidth; c.height = e.naturalHeight;
    const x = c.getContext('2d'); x.drawImage(e, 0, 0);
    const d = x.getImageData(0, 0, c.width, c.height).data; let h = 0;
    for (let i = 0; i < d.length; i++) h = (h * 31 + d[i]) >>> 0;
    return h;
  });
  const html = [...document.querySelectorAll('.jp-OutputArea .widget-html')].map(e => e.innerText);
  return {pix, html, sliders: document.querySelectorAll('.jp-OutputArea .widget-hslider').length};
}"""


class CheckFailed(Exception):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); return s.getsockname()[1]


def workspace(tmp: Path, notebooks: list[Path]) -> Path:
    "A folder JupyterLab serves: copies of the notebooks in analysis/, links to the repo's data, runs and params."
    root = tmp / "repo"; (root / "analysis").mkdir(parents=True)
    for nb in notebooks: shutil.copy2(nb, root / "analysis" / nb.name)
    for name in ("data", "runs", "params.yaml"):
        if not (ROOT / name).exists(): raise CheckFailed(f"{ROOT / name}: missing (run the pipeline first: the notebooks read it)")
        (root / name).symlink_to(ROOT / name)
    for rel, value in SETTINGS.items():
        f = tmp / "settings" / rel; f.parent.mkdir(parents=True, exist_ok=True); f.write_text(json.dumps(value))
    return root


def start_lab(tmp: Path, root: Path, port: int, token: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", JUPYTER_CONFIG_DIR=str(tmp / "config"),
               JUPYTER_RUNTIME_DIR=str(tmp / "runtime"), MPLCONFIGDIR=str(tmp / "mpl"))
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
           "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
           "--LabApp.expose_app_in_browser=True", f"--LabApp.user_settings_dir={tmp / 'settings'}",
           f"--LabApp.workspaces_dir={tmp / 'workspaces'}", "--LabApp.extension_manager=readonly",
           "--MultiKernelManager.default_kernel_name=ditgaze", *(["--allow-root"] if os.geteuid() == 0 else [])]
    proc = subprocess.Popen(cmd, env=env, stdout=open(tmp / "lab.log", "w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/api/status?token={token}"
    for _ in range(120):
        if proc.poll() is not None:
            raise CheckFailed(f"jupyter lab exited ({proc.returncode}):\n" + "\n".join((tmp / "lab.log").read_text().splitlines()[-15:]))
        try:
            urllib.request.urlopen(url, timeout=2); return proc
        except OSError: time.sleep(0.5)
    raise CheckFailed(f"jupyter lab did not answer on port {port} within 60 s")


def wait_for(page, what: str, fn, timeout: float):
    "Poll fn() until it returns a true value; fail naming `what`."
    end = time.time() + timeout
    while time.time() < end:
        v = fn()
        if v: return v
        page.wait_for_timeout(500)
    raise CheckFailed(f"timed out ({timeout:.0f} s) waiting for {what}")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def check_notebook(page, base: str, token: str, name: str, shots: Path, timeout: float) -> str:
    log(f"{name}: opening")
    page.goto(f"{base}/lab/workspaces/check-{name}/tree/analysis/{name}.ipynb?token={token}")   # its own workspace: no other tab restored
    wait_for(page, f"{name} and its kernel", lambda: (s := page.evaluate(STATE_JS)) and s["path"] == f"analysis/{name}.ipynb"
             and s["kernel"] == "idle" and s, 120)
    log(f"{name}: running all cells")
    t0 = time.time()
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")   # not awaited: we poll the cells
    def done():
        s = page.evaluate(STATE_JS)
        if s["errors"]: raise CheckFailed(f"{name}: a cell failed: {s['errors'][0]}")
        return s if s["pending"] == 0 and s["kernel"] == "idle" else None
    s = wait_for(page, f"{name} to run", done, timeout)
    ran = time.time() - t0
    log(f"{name}: ran in {ran:.0f} s; checking the widgets")
    if s["name"] != "ditgaze": raise CheckFailed(f"{name}: ran on kernel {s['name']!r}, not 'ditgaze'")
    figure = page.locator(".jp-OutputArea .jp-RenderedImage img").first
    figure.scroll_into_view_if_needed(); page.wait_for_timeout(300)
    page.screenshot(path=str(shots / f"{name}_1_static.png"))
    before = wait_for(page, f"{name}'s widgets to render", lambda: (o := page.evaluate(OUTPUT_JS)) and o["sliders"] and o["pix"] and -1 not in o["pix"] and o, 60)
    slider = page.locator(".jp-OutputArea .widget-hslider", has_text=SLIDERS[name]).first
    slider.scroll_into_view_if_needed(); page.wait_for_timeout(300)
    page.screenshot(path=str(shots / f"{name}_2_widgets.png"))
    readout = slider.locator(".widget-readout").inner_text()
    handle, track = slider.locator(".noUi-handle").first.bounding_box(), slider.locator(".noUi-target").first.bounding_box()
    x, y = handle["x"] + handle["width"] / 2, handle["y"] + handle["height"] / 2
    log(f"{name}: dragging the '{SLIDERS[name]}' slider")
    page.mouse.move(x, y); page.mouse.down(); page.mouse.move(x + 0.3 * track["width"], y, steps=8); page.mouse.up()
    wait_for(page, f"{name}'s renders to change after the slider moved",
             lambda: (o := page.evaluate(OUTPUT_JS)) and o["pix"] != before["pix"] and o["html"] != before["html"], 60)
    wait_for(page, f"{name}'s kernel to finish the update", lambda: page.evaluate(STATE_JS)["kernel"] == "idle", 60)
    page.wait_for_timeout(1000)                                   # the last widget messages reach the page
    after = page.evaluate(OUTPUT_JS)
    new_readout = slider.locator(".widget-readout").inner_text()
    if new_readout == readout: raise CheckFailed(f"{name}: the slider's readout did not move ({readout})")
    page.screenshot(path=str(shots / f"{name}_3_after_slider.png"))
    changed = [sum(a != b for a, b in zip(before[k], after[k])) for k in ("pix", "html")]
    return (f"{name}: {s['n']} code cells ran in {ran:.0f} s on kernel ditgaze; {before['sliders']} sliders, {len(before['pix'])} images; "
            f"'{SLIDERS[name]}' {readout} -> {new_readout}: {changed[0]} images and {changed[1]} texts changed")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("shots", help="folder for the screenshots")
    ap.add_argument("--notebooks", nargs="+", default=["gaze_sweep", "orthogonality"], help="names in analysis/ (default: both)")
    ap.add_argument("--timeout", type=float, default=300, help="seconds a notebook may take to run (default 300)")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright
    shots = Path(args.shots); shots.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="browser_check_"))
    lab, token, port = None, secrets.token_hex(16), free_port()
    try:
        root = workspace(tmp, [ROOT / "analysis" / f"{n}.ipynb" for n in args.notebooks])
        lab = start_lab(tmp, root, port, token)
        with sync_playwright() as p:
            ctx = p.chromium.launch_persistent_context(str(tmp / "chromium"), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
                                                       viewport={"width": 1500, "height": 1100})
            page = ctx.new_page(); page.set_default_timeout(60_000)
            for name in args.notebooks:
                print(check_notebook(page, f"http://127.0.0.1:{port}", token, name, shots, args.timeout), flush=True)
                page.evaluate("() => { window.jupyterapp.shell.currentWidget.sessionContext.shutdown(); }")   # one kernel at a time
                page.wait_for_timeout(2000)
            ctx.close()
        print(f"browser check passed; screenshots in {shots}")
        return 0
    except CheckFailed as e:
        print(f"browser check FAILED: {e}", file=sys.stderr); return 1
    finally:
        if lab is not None:
            lab.terminate()
            try: lab.wait(20)
            except subprocess.TimeoutExpired: lab.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
