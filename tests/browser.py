"""The headless browser the report's tests drive (Playwright over a Chromium or Chrome binary).

Found as ``$BRAINSCORE_PLUGINS_TEST_BROWSER`` (any Chromium or Chrome binary), else the first of the usual names on
the ``PATH``, else Chrome's macOS application. ``python tests/browser.py`` (the README's test command runs it before
pytest) installs the OS's Chromium where the user may (root, with apt-get) when none is found, and otherwise stops
with one line naming the fix. Nothing else in the suite needs a browser.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

VARIABLE = "BRAINSCORE_PLUGINS_TEST_BROWSER"
NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
MACOS_APPS = ("/Applications/Google Chrome.app/Contents/MacOS/Google Chrome",
              "/Applications/Chromium.app/Contents/MacOS/Chromium")
FIX = (f"install Chromium from your OS packages (e.g. `apt-get install chromium` as root) or set {VARIABLE} to any "
       f"Chromium or Chrome binary")


class BrowserNotFound(RuntimeError):
    """No usable browser; the message is one line naming the fix."""


def find() -> str:
    """The browser's executable.

    Raises:
        BrowserNotFound: ``$BRAINSCORE_PLUGINS_TEST_BROWSER`` names no executable file, or it is unset and no browser
            is installed.
    """
    chosen = os.environ.get(VARIABLE)
    if chosen:
        if os.path.isfile(chosen) and os.access(chosen, os.X_OK):
            return chosen
        raise BrowserNotFound(f"{VARIABLE}={chosen} is not an executable file; point it at a Chromium or Chrome "
                              f"binary")
    for name in NAMES:
        found = shutil.which(name)
        if found:
            return found
    for path in MACOS_APPS:
        if os.access(path, os.X_OK):
            return path
    raise BrowserNotFound(f"no Chromium or Chrome found for the report's tests: {FIX}")


def _install_from_os_packages() -> None:
    """Debian's or Ubuntu's Chromium, where this user may install packages (root with apt-get); else nothing."""
    if os.name != "posix" or os.geteuid() != 0 or shutil.which("apt-get") is None:
        return
    print("installing chromium from the OS packages (apt-get) for the report's tests", file=sys.stderr)
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "--no-install-recommends",
                                                   "chromium"]):
        subprocess.run(command, stdout=subprocess.DEVNULL, check=False)


def main() -> int:
    try:
        browser = find()
    except BrowserNotFound:
        if os.environ.get(VARIABLE):
            raise
        _install_from_os_packages()
        browser = find()
    print(f"browser for the report's tests: {browser}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrowserNotFound as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
