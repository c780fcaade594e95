"""Safe run-name resolution."""

from __future__ import annotations

from pathlib import Path

import pytest

from dashboard.runs import RunNotFound, UnsafeRunName, resolve_run


@pytest.mark.parametrize("name", ["..", ".", "../etc", "/etc", "a/b", "a\\b", "x\x00", ""])
def test_names_that_could_escape_are_rejected(tmp_path: Path, name: str) -> None:
    with pytest.raises(UnsafeRunName):
        resolve_run(str(tmp_path), name)


def test_symlink_to_outside_is_rejected(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (runs / "link").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(UnsafeRunName):
        resolve_run(str(runs), "link")


def test_symlink_inside_is_allowed(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "alias").symlink_to("real")
    assert resolve_run(str(tmp_path), "alias") == str((tmp_path / "real").resolve())


def test_missing_run_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(RunNotFound):
        resolve_run(str(tmp_path), "nope")


def test_latest_pointing_to_itself_does_not_recurse(tmp_path: Path) -> None:
    (tmp_path / "latest").write_text("latest")
    with pytest.raises(RunNotFound):
        resolve_run(str(tmp_path), "latest")
