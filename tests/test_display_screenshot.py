"""The HTML cards as a browser draws them: headless Chromium renders a Model and its inspect report to a PNG.

Skipped when no Chromium is on PATH (CI installs Debian's ``chromium``). The
image in the docs (``docs/img/display.png``) is made by the same code:
``python tests/test_display_screenshot.py docs/img/display.png``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import mlejax as mle

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def _browser() -> str | None:
    return next((path for path in map(shutil.which, BROWSERS) if path), None)


def render(workdir: Path, png: Path, browser: str) -> None:
    """Export a small forest with string labels into ``workdir``, run it once, and screenshot its two cards to ``png``."""
    from sklearn.ensemble import RandomForestClassifier

    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 6)).astype(np.float32)
    y = np.array(["bronze", "silver", "gold"], dtype=object)[(X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5)]
    path = workdir / "forest.mle"
    mle.export_model(RandomForestClassifier(n_estimators=10, max_depth=5, random_state=0).fit(X, y), path,
                     sample_input=X[:100], progress=False)
    model = mle.load_model(path)
    model.predict_proba(X[:8])  # one compiled program shows in the card
    cards = [model._repr_mimebundle_()["text/html"], mle.inspect_model(path)._repr_mimebundle_()["text/html"]]
    page = workdir / "cards.html"
    page.write_text("<!doctype html><html><head><meta charset='utf-8'></head>"
                    "<body style='margin: 12px; background: #fff; display: flex; gap: 16px; align-items: flex-start;'>"
                    + "".join(f"<div>{c}</div>" for c in cards) + "</body></html>", encoding="utf-8")
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--user-data-dir={workdir / 'profile'}",
                    "--window-size=1400,1250", f"--screenshot={png}", page.as_uri()],
                   check=True, capture_output=True, timeout=120, cwd=workdir)


def test_cards_render_in_chromium(tmp_path):
    browser = _browser()
    if browser is None:
        pytest.skip(f"no headless browser on PATH (looked for {', '.join(BROWSERS)}; CI installs Debian's chromium)")
    image = pytest.importorskip("matplotlib.image")
    png = tmp_path / "cards.png"
    render(tmp_path, png, browser)
    pixels = image.imread(png)[..., :3]
    assert pixels.shape[:2] == (1250, 1400)
    ink = np.any(pixels < 0.85, axis=-1)  # text and borders: visibly darker than the white page
    assert 0.01 < ink.mean() < 0.5, f"{ink.mean():.1%} of the page is text"
    drawn = np.any(pixels < 0.99, axis=-1)  # also the title bars' and badges' tints
    assert 0.05 < drawn.mean() < 0.8, f"{drawn.mean():.1%} of the page is drawn on"
    cols = np.flatnonzero(ink.any(axis=0))
    assert cols.max() - cols.min() > 700, "both cards, side by side"
    rows = np.flatnonzero(ink.any(axis=1))
    assert rows.max() - rows.min() > 600, "the cards' sections, not just their title lines"
    assert len(np.unique((pixels * 255).astype(np.uint8).reshape(-1, 3), axis=0)) > 50  # text, badges and tints, not flat boxes


if __name__ == "__main__":
    import tempfile

    out = Path(sys.argv[1] if len(sys.argv) > 1 else "cards.png").resolve()
    with tempfile.TemporaryDirectory() as tmp:
        render(Path(tmp), out, _browser() or sys.exit("no chromium on PATH"))
    print(f"wrote {out}")
