"""The report drawn by a real browser: the operating system's Chromium, headless, offline.

Needs the Debian packages `chromium` and `chromium-driver` (.ci/run installs them) and the
`selenium` test dependency.  Outside CI the test is skipped when the browser is missing;
with HWSIM_BROWSER_TEST=1 (set by .ci/run) a missing browser is a failure."""

from __future__ import annotations

import os
import shutil
import time

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
REQUIRED = os.environ.get("HWSIM_BROWSER_TEST") == "1"

# Every figure div, after plotly has drawn it: how many data-bearing marks (bars, points,
# line paths) its SVG holds.
MARKS = """
return Array.from(document.querySelectorAll('.js-plotly-plot')).map(plot => [
  plot.id,
  plot.querySelectorAll('.main-svg').length,
  plot.querySelectorAll('g.trace.bars g.point path, g.trace.scatter path.js-line, ' +
                        'g.trace.scatter g.points path').length]);
"""


def _driver():
    if not (os.path.exists(CHROMIUM) and os.path.exists(DRIVER)):
        if REQUIRED:
            pytest.fail(
                f"no browser: {CHROMIUM} and {DRIVER} are needed (apt-get install "
                "chromium chromium-driver)"
            )
        pytest.skip("the chromium and chromium-driver packages are not installed")
    webdriver = pytest.importorskip("selenium.webdriver")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1400,1000",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = webdriver.ChromeService(executable_path=DRIVER)
    return webdriver.Chrome(options=options, service=service)


# The feedback study's two views: each two panels (accuracy, angle), a line per group with
# ± one standard deviation error bars.
STUDY_AXES = """
return Array.from(document.querySelectorAll('.js-plotly-plot')).map(plot => [
  plot.id,
  Array.from(plot.querySelectorAll('.g-xtitle, .g-x2title, .g-ytitle, .g-y2title'))
       .map(title => title.textContent),
  plot.querySelectorAll('g.errorbar').length]);
"""


def _draws_every_figure(driver, page, least: int) -> list:
    driver.get(page.resolve().as_uri())
    # plotly draws after the page's load event returns control: on a loaded machine the
    # figures may still be coming; wait for them (up to a bound) before judging.
    deadline = time.monotonic() + 30
    marks = driver.execute_script(MARKS)
    while time.monotonic() < deadline and (
        len(marks) < least or any(svgs < 1 or drawn < 1 for _, svgs, drawn in marks)
    ):
        time.sleep(0.25)
        marks = driver.execute_script(MARKS)
    assert len(marks) >= least, f"{page}: {len(marks)} figures; log: {driver.get_log('browser')}"
    for figure, svgs, drawn in marks:
        assert svgs >= 1, f"{page}: {figure}: no SVG"
        assert drawn > 0, f"{page}: {figure}: drew no bars, points or lines"
    severe = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    assert severe == []
    return marks


def test_every_figure_draws_data_in_a_real_browser_offline(main_job, feedback_study, tmp_path):
    """The report of `hwsim run` and the page of `hwsim study feedback`, in one browser."""
    folder, _ = main_job
    study, _, _ = feedback_study
    driver = _driver()
    try:
        driver.set_page_load_timeout(60)
        _draws_every_figure(driver, folder / "index.html", 10)
        assert driver.save_screenshot(str(tmp_path / "report.png"))
        assert len(_draws_every_figure(driver, study / "index.html", 2)) == 2
        views = driver.execute_script(STUDY_AXES)
        assert [view[0] for view in views] == ["figure-0", "figure-1"]
        for _, titles, error_bars in views:
            assert "test accuracy (%)" in titles and "angle between Bᵀ and W_out (°)" in titles
            assert error_bars > 0
        assert any(title.startswith("rank r") for title in views[0][1])
        assert any(title.startswith("non-zeros per neuron s") for title in views[1][1])
        assert driver.save_screenshot(str(tmp_path / "study.png"))
    finally:
        driver.quit()
