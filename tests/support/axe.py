"""axe-core in the page under test: the engine ships inside the `axe-playwright-python` wheel.

The script is handed to the page through Playwright (the DevTools protocol), so the app's
strict Content-Security-Policy stays as it is, and nothing is vendored in this repository.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from typing import Any

from playwright.async_api import Page


@cache
def axe_source() -> str:
    return (files("axe_playwright_python") / "axe.min.js").read_text(encoding="utf-8")


async def axe_violations(page: Page) -> list[dict[str, Any]]:
    """Every rule axe-core finds broken on the page as it is now (WCAG A/AA and best practice)."""
    if not await page.evaluate("() => typeof window.axe === 'object'"):
        await page.evaluate(axe_source())
    found: list[dict[str, Any]] = await page.evaluate(
        """async () => (await axe.run(document, { resultTypes: ["violations"] })).violations.map(
          (v) => ({ id: v.id, impact: v.impact, help: v.help,
                    targets: v.nodes.map((n) => n.target.join(" ")).slice(0, 5) }))"""
    )
    return found


def describe(violations: list[dict[str, Any]]) -> str:
    return "\n".join(f"{v['id']} ({v['impact']}): {v['help']} at {v['targets']}" for v in violations)


async def assert_no_axe_violations(page: Page, *, allowed: frozenset[str] = frozenset()) -> None:
    """Fails with every violation axe-core reports, rule, impact and elements, except ``allowed``
    rule ids (each must name, where it is used, why and whose file it is)."""
    violations = [v for v in await axe_violations(page) if v["id"] not in allowed]
    assert not violations, f"axe-core on {page.url}:\n{describe(violations)}"
