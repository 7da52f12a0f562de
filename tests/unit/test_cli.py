"""The `chantier` command in an install that lacks a role's libraries: it says which install."""

from __future__ import annotations

import importlib
from types import ModuleType

import pytest

from chantier import cli


@pytest.fixture
def without_moto(monkeypatch: pytest.MonkeyPatch) -> None:
    """`commands.stack` fails to import as it would where moto is not installed."""
    real = importlib.import_module

    def import_module(name: str, package: str | None = None) -> ModuleType:
        if name == "commands.stack":
            raise ModuleNotFoundError("No module named 'moto'", name="moto")
        return real(name, package)

    monkeypatch.setattr(cli.importlib, "import_module", import_module)


@pytest.mark.usefixtures("without_moto")
def test_help_names_the_install_a_command_needs(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["--help"])
    assert exited.value.code == 0
    out = " ".join(capsys.readouterr().out.split())  # help lines wrap with the terminal
    assert (
        "the local stack: broker, AWS APIs, rules engine, API "
        "(needs pip install 'chantier-connecte[local]')" in out
    )


@pytest.mark.usefixtures("without_moto")
@pytest.mark.parametrize("argv", [["stack"], ["stack", "--help"], ["stack", "up", "-x", "y"]])
def test_running_it_says_what_is_missing_and_how_to_install_it(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "lacks the moto package" in err
    assert "pip install 'chantier-connecte[local]'" in err


def test_a_missing_module_of_our_own_is_a_bug_not_an_install_choice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def import_module(name: str, package: str | None = None) -> ModuleType:
        raise ModuleNotFoundError("No module named 'cloud.gone'", name="cloud.gone")

    monkeypatch.setattr(cli.importlib, "import_module", import_module)
    with pytest.raises(ModuleNotFoundError, match=r"cloud\.gone"):
        cli.main(["stack", "status"])
