"""Screenshots of the MLflow dashboard (docs/dashboard.md, docs/img/dashboard_*.png).

Needs a running ``mlflow server`` over a store with one single run and one sweep in the same
experiment, Playwright (``pip install playwright`` in a venv of its own, not the project's) and a
Chromium binary (Debian: ``apt-get install chromium``; no ``playwright install`` needed).
Everything else is the standard library (Pillow, when importable, only shrinks PNGs over the
size limit). The full sequence (store, runs, server, this script) is in docs/dashboard.md.

    python scripts/dashboard_screenshots.py --url http://127.0.0.1:5055 \
        --experiment dashboard_demo --out docs/img

Which runs: the newest finished top-level run that is not a sweep parent (``--run`` to choose)
and the newest sweep parent, a run named ``sweep-*`` (``--parent`` to choose).

The browser starts with MLflow's sidebar switch on "Model training" (localStorage
``mlflow.workflowType_v1``) and the assistant panel closed: MLflow 3.17's UI picks the GenAI or
the machine-learning view from that switch (default GenAI), not from the experiment's
``mlflow.experimentKind`` tag; see docs/dashboard.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.parse
import urllib.request
from pathlib import Path

LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# Set before the app's own scripts run: the "Model training" view, no assistant panel.
INIT_SCRIPT = """
localStorage.setItem('mlflow.workflowType_v1', JSON.stringify('machine_learning'));
localStorage.setItem('mlflow.assistant.panelOpen_v1', 'false');
localStorage.setItem('mlflow.assistant.fab.autoOpenedOnFirstLoad_v1', 'true');
"""

MAX_BYTES = 400_000


def api(url: str, path: str, body: dict | None = None, query: dict | None = None) -> dict:
    full = f"{url}/api/2.0/mlflow/{path}"
    if query:
        full += "?" + urllib.parse.urlencode(query)
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(full, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.load(resp)


def pick_runs(url: str, experiment: str) -> tuple[str, str, str]:
    """(experiment id, single run id, sweep parent id): the newest of each kind."""
    exp = api(url, "experiments/get-by-name", query={"experiment_name": experiment})["experiment"]
    exp_id = exp["experiment_id"]
    tags = {t["key"]: t["value"] for t in exp.get("tags", [])}
    print(
        f"experiment {experiment} ({exp_id}) mlflow.experimentKind={tags.get('mlflow.experimentKind')}"
    )
    runs = api(
        url,
        "runs/search",
        {
            "experiment_ids": [exp_id],
            "max_results": 1000,
            "order_by": ["attributes.start_time DESC"],
        },
    ).get("runs", [])
    single = parent = None
    for r in runs:
        rtags = {t["key"]: t["value"] for t in r["data"].get("tags", [])}
        name = r["info"].get("run_name", "")
        if r["info"]["status"] != "FINISHED" or "mlflow.parentRunId" in rtags:
            continue
        if name.startswith("sweep-"):
            parent = parent or r["info"]["run_id"]
        else:
            single = single or r["info"]["run_id"]
    if not single or not parent:
        sys.exit(
            f"need a finished single run and a sweep parent in {experiment}: {single=} {parent=}"
        )
    return exp_id, single, parent


def shrink(path: Path) -> None:
    """Quantise a PNG over MAX_BYTES to 256 colours (UI screenshots survive it), if Pillow is here."""
    if path.stat().st_size <= MAX_BYTES:
        return
    try:
        from PIL import Image
    except ImportError:
        print(f"  {path.name}: {path.stat().st_size} bytes (no Pillow to shrink it)")
        return
    Image.open(path).convert("RGB").quantize(colors=256).save(path, optimize=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", default="http://127.0.0.1:5055")
    ap.add_argument("--experiment", default="dashboard_demo")
    ap.add_argument("--run", help="run id of the single run (default: newest)")
    ap.add_argument("--parent", help="run id of the sweep parent (default: newest)")
    ap.add_argument("--out", type=Path, default=Path("docs/img"))
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    ap.add_argument("--width", type=int, default=1600)
    ap.add_argument("--height", type=int, default=1000)
    ap.add_argument("--settle-ms", type=int, default=6000, help="wait after each navigation")
    args = ap.parse_args()

    from playwright.sync_api import sync_playwright

    url = args.url.rstrip("/")
    exp_id, run, parent = pick_runs(url, args.experiment)
    run = args.run or run
    parent = args.parent or parent
    print(f"single run {run}, sweep parent {parent}")
    args.out.mkdir(parents=True, exist_ok=True)
    base = f"{url}/#/experiments/{exp_id}"

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args.chromium, headless=True, args=LAUNCH_ARGS)
        ctx = browser.new_context(viewport={"width": args.width, "height": args.height})
        ctx.add_init_script(INIT_SCRIPT)
        page = ctx.new_page()

        # A fresh browser (no init script) opening the experiment from the list: MLflow 3.17
        # shows its GenAI overview although the experiment is tagged custom_model_development.
        fresh = browser.new_context(viewport={"width": args.width, "height": args.height})
        fpage = fresh.new_page()
        fpage.goto(f"{url}/#/experiments")
        fpage.wait_for_timeout(args.settle_ms)
        fpage.get_by_text(args.experiment, exact=True).first.click()
        fpage.wait_for_timeout(args.settle_ms)
        path = args.out / "dashboard_genai_default.png"
        fpage.screenshot(path=str(path))
        shrink(path)
        print(f"  {path}  {path.stat().st_size // 1000} KB  <- {fpage.url}")
        fresh.close()

        def shot(
            name: str,
            route: str,
            search: str | None = None,
            click: str | None = None,
            height: int | None = None,
        ):
            page.set_viewport_size({"width": args.width, "height": height or args.height})
            page.goto(f"{base}{route}")
            page.wait_for_timeout(args.settle_ms)
            if search is not None:
                page.get_by_placeholder("Search metric charts").fill(search)
                page.wait_for_timeout(2000)
            if click is not None:
                page.get_by_text(click, exact=True).first.click()
                page.wait_for_timeout(3000)
            path = args.out / f"dashboard_{name}.png"
            page.screenshot(path=str(path))
            shrink(path)
            print(f"  {path}  {path.stat().st_size // 1000} KB  <- {page.url}")

        # The experiment's runs table: dataset and logged-model columns.
        shot("runs_table", "/runs")
        # One run: its test grid as curves against SNR (step = SNR in dB), one chart per kind.
        # Filtered to balanced accuracy; search "curve/" for accuracy too.
        shot("run_curves", f"/runs/{run}/model-metrics", search="curve/bal_acc")
        # Its overview: dataset input, logged model, metrics.
        shot("run_overview", f"/runs/{run}")
        # Its confusion matrix (row-normalised, colour bar).
        shot("run_confusion", f"/runs/{run}/artifacts", click="confusion_matrix.png", height=1150)
        # The sweep parent: mean curves per kind and model.
        shot("sweep_parent", f"/runs/{parent}/model-metrics", search="curve/bal_acc")
        # Its figure and its grid table.
        shot("sweep_figure", f"/runs/{parent}/artifacts", click="accuracy_vs_snr.png")
        shot("sweep_table", f"/runs/{parent}/artifacts", click="sweep_grid.json")
        browser.close()


if __name__ == "__main__":
    main()
