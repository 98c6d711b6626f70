"""The benchmarks are development tools: without their extra, they say what to install."""

from __future__ import annotations

import sys

import pytest

from cli.main import main


@pytest.mark.parametrize(
    "command", ["bench", "bench-websockets", "bench-orders", "bench-load", "bench-fairness"]
)
def test_a_bench_without_the_dev_extra_says_what_to_install(
    command: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "httpx", None)  # `import httpx` now fails as if missing
    for module in [name for name in sys.modules if name.startswith("devtools.bench")]:
        monkeypatch.delitem(sys.modules, module)
    monkeypatch.delenv("DATABASE_URL", raising=False)

    assert main([command]) == 2

    message = capsys.readouterr().err
    assert f"invoicing {command}: the benchmarks need the development tools" in message
    assert "pip install -e '.[dev]'" in message
