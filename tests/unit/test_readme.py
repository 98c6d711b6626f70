"""The README documents every setting the product reads."""

from __future__ import annotations

import re
from pathlib import Path

from invoicing.kernel.settings import ENVIRONMENT

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_environment_variable_has_a_row_in_the_configuration_table() -> None:
    configuration = README.read_text().split("## Configuration", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `([A-Z0-9_]+)` \|", configuration, flags=re.MULTILINE))
    assert documented == set(ENVIRONMENT)
