"""Render an HTML report in a real headless Chromium (Debian's package, installed by
``deploy/chromium.sh install``) and say what it drew.

``measure(report, workdir)`` loads a copy of the page with a measuring script appended (the
report itself has no script) and returns, per ``svg.chart``, its rendered size and how many
of its marks have a non-zero rendered box. ``screenshot(report, png)`` takes a full-page
screenshot. Everything is written under ``workdir``, never into the repository.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from tests.conftest import REPO

__all__ = ["chromium", "measure", "screenshot"]

_MEASURE = """<script>
const charts = [...document.querySelectorAll('svg.chart')].map(svg => {
  const box = svg.getBoundingClientRect();
  const marks = [...svg.querySelectorAll('.mark')].filter(m => {
    const b = m.getBoundingClientRect(); return b.width > 0 && b.height > 0; }).length;
  return {label: svg.getAttribute('aria-label'), width: box.width, height: box.height, marks};
});
document.body.setAttribute('data-measured', JSON.stringify(charts));
</script>"""


def chromium() -> str:
    """The browser's executable, installed from Debian's packages when missing."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    subprocess.run(["bash", str(REPO / "deploy" / "chromium.sh"), "install"], check=True)
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "deploy/chromium.sh install did not install chromium"
    return found


def _run(workdir: Path, *args: str) -> str:
    command = [
        chromium(),
        "--headless",
        "--no-sandbox",  # tests may run as root
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--user-data-dir={workdir / 'chromium-profile'}",
        *args,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, f"chromium failed ({done.returncode}): {done.stderr[-2000:]}"
    return done.stdout


def measure(report: Path, workdir: Path) -> list[dict[str, Any]]:
    page = workdir / "measured.html"
    page.write_text(report.read_text().replace("</body>", _MEASURE + "</body>"))
    dom = _run(workdir, "--virtual-time-budget=5000", "--dump-dom", page.as_uri())
    found = re.search(r'data-measured="([^"]*)"', dom)
    assert found, f"the measuring script did not run: {dom[:500]}"
    return list(json.loads(html.unescape(found.group(1))))


def screenshot(report: Path, png: Path, workdir: Path) -> Path:
    _run(workdir, f"--screenshot={png}", "--window-size=1100,4000", report.as_uri())
    assert png.is_file() and png.stat().st_size > 0
    return png
