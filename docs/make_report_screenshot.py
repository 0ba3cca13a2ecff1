"""Regenerate docs/report.png: `python docs/make_report_screenshot.py` (about 15 s).

Runs the README's main job (`hwsim run`) into a temporary folder and photographs the top of
its report in the operating system's headless Chromium (packages chromium and
chromium-driver) through selenium.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from selenium import webdriver

OUT = Path(__file__).with_name("report.png")


def main() -> int:
    with tempfile.TemporaryDirectory() as folder:
        run = Path(folder) / "run"
        subprocess.run(
            [sys.executable, "-m", "hwsim", "run", "--out", str(run)],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        options = webdriver.ChromeOptions()
        options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
        for flag in (
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--window-size=1400,1200",
            "--hide-scrollbars",
        ):
            options.add_argument(flag)
        service = webdriver.ChromeService(
            executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver"
        )
        driver = webdriver.Chrome(options=options, service=service)
        try:
            driver.get((run / "index.html").as_uri())
            driver.save_screenshot(str(OUT))
        finally:
            driver.quit()
    print(f"wrote {OUT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
