"""The interactive report in headless Chromium with the network off.

Chromium is driven without a DevTools client: the test copies the page with one
extra local script (a probe) that waits for the plots, moves the mouse over a
data point, clicks the x-axis switch and writes what it saw into the DOM;
``--dump-dom`` prints that DOM. The network is cut with a resolver that
resolves nothing and a proxy that does not exist. Skipped where Chromium or
plotly is not installed.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pytest

from harness.report import interactive
from harness.report.build import build_report
from report_sample import BEHAVIOUR, synthetic_results

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
pytestmark = [pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)"),
              pytest.mark.skipif(interactive.plotly_js_source() is None, reason="plotly is not installed")]

NASTY = '<img src=x onerror="document.title=1">sgd & 5%{y}'
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=http://127.0.0.1:9",   # network off
         "--enable-logging=stderr", "--v=0", "--window-size=1300,3000", "--virtual-time-budget=20000"]
PROBLEMS = ("CONSOLE", "Not allowed to load local resource", "ERR_FILE_NOT_FOUND", "Uncaught",
            "ERR_NAME_NOT_RESOLVED", "ERR_PROXY_CONNECTION_FAILED")

# waits for the plots, hovers the 4th point of the first run of a loss-curve figure with a real
# mousemove on plotly's drag layer, then clicks the "samples seen" button of the same figure
PROBE = r"""
window.addEventListener("load", function () {
  var out = {loadMs: performance.now()};
  var figures = Array.from(document.querySelectorAll("div.iplot"));
  out.declared = figures.length;
  out.rendered = figures.filter(function (d) { return d.classList.contains("js-plotly-plot") && d.querySelector("svg.main-svg g.scatterlayer g.trace path"); }).length;
  out.webgl = document.querySelectorAll("div.iplot canvas").length;
  out.injected = document.querySelectorAll("div.iplot img[src='x']").length;
  out.legend = Array.from(document.querySelectorAll("div.iplot .legendtext")).map(function (e) { return e.textContent; });
  var gd = document.querySelector("div.iplot[data-figure$='-train-loss']");
  var trace = gd._fullData[0], xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
  var box = gd.getBoundingClientRect();
  var x = box.left + xa._offset + xa.c2p(trace.x[3]), y = box.top + ya._offset + ya.c2p(trace.y[3]);
  out.xBefore = xa.title.text;
  gd.querySelector(".nsewdrag").dispatchEvent(new MouseEvent("mousemove", {clientX: x, clientY: y, bubbles: true}));
  setTimeout(function () {
    out.hover = Array.from(gd.querySelectorAll(".hoverlayer .hovertext")).map(function (e) { return e.textContent; });
    var button = Array.from(gd.querySelectorAll(".updatemenu-button")).filter(function (b) {
      return b.textContent === "samples seen"; })[0];
    out.button = !!button;
    if (button) { button.dispatchEvent(new MouseEvent("click", {bubbles: true})); }
    setTimeout(function () {
      out.xAfter = gd._fullLayout.xaxis.title.text;
      out.firstXAfter = gd._fullData[0].x.slice(0, 3);
      out.firstXBefore = trace.x.slice(0, 3);
      var pre = document.createElement("pre");
      pre.id = "probe-result";
      pre.textContent = JSON.stringify(out);
      document.body.appendChild(pre);
    }, 500);
  }, 500);
});
"""


class _Result(HTMLParser):
    def __init__(self):
        super().__init__()
        self.inside, self.text = False, ""

    def handle_starttag(self, tag, attrs):
        self.inside = tag == "pre" and ("id", "probe-result") in attrs

    def handle_endtag(self, tag):
        self.inside = False

    def handle_data(self, data):
        if self.inside:
            self.text += data


def _probe(page: Path) -> tuple[dict, list[str]]:
    """Load a copy of ``page`` with the probe; return the probe's findings and the page problems Chromium logged."""
    (page.parent / "probe.js").write_text(PROBE)
    probed = page.with_name("probed.html")
    probed.write_text(page.read_text(encoding="utf-8").replace("</body>", '<script src="probe.js"></script>\n</body>'),
                      encoding="utf-8")
    with tempfile.TemporaryDirectory() as profile:
        proc = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--dump-dom", probed.resolve().as_uri()],
                              capture_output=True, text=True, timeout=180)
    parser = _Result()
    parser.feed(proc.stdout)
    assert parser.text, f"the probe wrote nothing; chromium exited {proc.returncode}: {proc.stderr[-800:]}"
    return json.loads(parser.text), [line for line in proc.stderr.splitlines() if any(p in line for p in PROBLEMS)]


@pytest.fixture(scope="module")
def probed(tmp_path_factory):
    behaviour = {NASTY: BEHAVIOUR["sgd"]}
    results = synthetic_results(datasets=("digits", "face-vs-background"), losses=("ce", "wce"),
                                optimizers=("bgd", "minibatch", NASTY), seeds=(0, 1), epochs=5, behaviour=behaviour)
    folder = tmp_path_factory.mktemp("interactive")
    page = build_report(folder, results=results, manifest={"sweep": "interactive test"}, claims=[])
    found, problems = _probe(page)
    return folder, page, found, problems


@pytest.mark.slow
def test_page_loads_offline_without_console_errors(probed):
    folder, page, found, problems = probed
    assert problems == []
    text = page.read_text(encoding="utf-8")
    # every script and image is a local file next to the page: nothing to fetch from a network
    sources = re.findall(r'<(?:script|img)[^>]* src="([^"]+)"', text)
    assert sources and all(not re.match(r"^[a-z]+:", s) and (folder / s).is_file() for s in sources), sources
    assert (folder / interactive.PLOTLY_JS).stat().st_size > 1_000_000   # the real bundle, copied once
    assert len(list(folder.rglob("plotly*.js"))) == 1
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    print(f"page and its files: {size / 1e6:.1f} MB; loaded and drawn in {found['loadMs'] / 1000:.2f} s")   # -s shows it


def test_every_interactive_figure_renders_as_svg(probed):
    folder, page, found, _ = probed
    # per family: train, test, suboptimality (no reference here: none), learning rate; plus profile and fixed target
    assert found["declared"] >= 2 * 3 + 2
    assert found["rendered"] == found["declared"]
    assert found["webgl"] == 0


def test_hover_names_the_run_and_the_value(probed):
    _, _, found, _ = probed
    hover = " ".join(found["hover"])
    assert re.search(r"lr 0\.1 · seed \d", hover), found["hover"]
    assert "epoch 3" in hover and "train loss" in hover, found["hover"]


def test_x_axis_switch_changes_the_axis(probed):
    _, _, found, _ = probed
    assert found["button"]
    assert found["xBefore"] == "epochs" and found["xAfter"] == "samples seen"
    assert found["firstXBefore"] == [0, 1, 2]
    assert found["firstXAfter"] != found["firstXBefore"]


def test_plugin_names_stay_text_in_legend_and_hover(probed):
    _, _, found, _ = probed
    assert found["injected"] == 0
    assert NASTY in found["legend"]


@pytest.mark.slow
def test_page_without_plotly_shows_the_pngs(tmp_path, monkeypatch):
    monkeypatch.setattr(interactive, "plotly_js_source", lambda: None)
    results = synthetic_results(datasets=("digits",), losses=("ce",), optimizers=("bgd", "sgd"), seeds=(0,), epochs=3)
    page = build_report(tmp_path, results=results, manifest={}, claims=[], processes=1)
    text = page.read_text(encoding="utf-8")
    assert "<script" not in text and 'class="iplot"' not in text
    assert not (tmp_path / interactive.PLOTLY_JS).exists()
    assert re.findall(r'<img src="figures/[^"]+\.png"', text)
