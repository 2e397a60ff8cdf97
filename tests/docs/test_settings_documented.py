"""Every setting the code reads is in the README, and the gateway's --help lists every GATEWAY_* one."""

from __future__ import annotations

from pathlib import Path

from chumphae.config import Settings
from gateway.cli import build_parser
from gateway.config import GatewaySettings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


def test_every_backend_setting_is_in_the_readme() -> None:
    missing = [f"CHUMPHAE_{n.upper()}" for n in Settings.model_fields if f"`CHUMPHAE_{n.upper()}`" not in README]
    assert not missing, f"README lacks {missing}"


def test_every_gateway_setting_is_in_the_readme_and_in_help() -> None:
    text = build_parser().format_help()
    names = [f"GATEWAY_{n.upper()}" for n in GatewaySettings.model_fields]
    assert [n for n in names if f"`{n}`" not in README] == []
    assert [n for n in names if n not in text] == []
    for name, field in GatewaySettings.model_fields.items():  # with its real default
        if field.default not in (None, ""):
            line = next(x for x in text.splitlines() if f"GATEWAY_{name.upper()} " in x)
            want = str(field.default).lower() if isinstance(field.default, bool) else str(field.default)
            assert want in line, line  # a bool as the environment writes it: `true`
    assert "GATEWAY_TOKEN" in README and "/healthz" in README


def test_every_gateway_option_has_help_and_is_in_the_readme() -> None:
    """An outsider reads the README and `--help`: each option of chumphae-gateway is in both, explained."""
    options = [a for a in build_parser()._actions if a.option_strings and a.dest != "help"]
    assert len(options) >= 9
    assert [a.dest for a in options if not a.help] == []
    assert [a.option_strings[0] for a in options if f"{a.option_strings[0]}" not in README] == []
