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
            assert str(field.default) in line, line
    assert "GATEWAY_TOKEN" in README and "/healthz" in README
