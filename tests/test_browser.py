"""The report tests' browser: found from the variable or the usual names, else one line naming the fix."""
import os
import subprocess
import sys

import pytest

import browser


@pytest.fixture
def nothing_installed(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.delenv(browser.VARIABLE, raising=False)
    monkeypatch.setattr(browser, "MACOS_APPS", ())


def _executable(path):
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return str(path)


def test_the_variable_wins_and_a_browser_on_the_path_is_found(tmp_path, monkeypatch, nothing_installed):
    (tmp_path / "bin").mkdir()
    on_path = _executable(tmp_path / "bin" / "google-chrome")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    assert browser.find() == on_path
    chosen = _executable(tmp_path / "my-chromium")
    monkeypatch.setenv(browser.VARIABLE, chosen)
    assert browser.find() == chosen


def test_no_browser_is_one_line_naming_the_fix(tmp_path, monkeypatch, nothing_installed):
    monkeypatch.setattr(browser, "_install_from_os_packages", lambda: None)
    with pytest.raises(browser.BrowserNotFound, match=f"set {browser.VARIABLE} to any Chromium or Chrome binary"):
        browser.main()
    monkeypatch.setenv(browser.VARIABLE, str(tmp_path / "missing"))
    with pytest.raises(browser.BrowserNotFound, match=f"{browser.VARIABLE}=.*missing is not an executable file"):
        browser.find()


@pytest.mark.slow
def test_the_script_exits_1_with_one_line(tmp_path):
    env = {**os.environ, browser.VARIABLE: str(tmp_path / "missing")}  # set: nothing is installed
    process = subprocess.run([sys.executable, browser.__file__], env=env, capture_output=True, text=True,
                             timeout=60)
    assert process.returncode == 1 and process.stdout == ""
    assert process.stderr.count("\n") == 1 and process.stderr.startswith(f"error: {browser.VARIABLE}=")
