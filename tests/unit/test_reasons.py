"""The browser and the emails use the same words for each failure code."""

from __future__ import annotations

import re
from pathlib import Path

from invoicing.domain.reasons import REASON_WORDS, reason_label

REASONS_JS = Path(__file__).resolve().parents[2] / "web" / "static" / "reasons.js"


def test_the_browser_table_is_the_same_as_the_emails() -> None:
    table = REASONS_JS.read_text().split("const REASONS = {", 1)[1].split("};", 1)[0]
    in_browser = dict(re.findall(r'^\s*(\w+): "([^"]*)",$', table, re.MULTILINE))
    assert in_browser == REASON_WORDS


def test_an_unknown_code_is_made_readable_like_the_browser_does() -> None:
    assert reason_label("missing_billing_info") == "Customer billing details missing"
    assert reason_label("customer_blocked") == "Customer blocked"
    assert reason_label("") == ""
