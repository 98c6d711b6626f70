"""There is no Docker engine in CI, so the deployment files are checked statically."""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SERVICES = {"postgres", "redis", "migrate", "server", "worker"}
APP_SERVICES = ("migrate", "server", "worker")
LONG_RUNNING_APP_SERVICES = ("server", "worker")
RUNTIME_URL = (
    "postgresql://invoicing_runtime:${RUNTIME_DB_PASSWORD:-invoicing_runtime}@postgres:5432/invoicing"
)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


@pytest.fixture(scope="module")
def dockerfile_lines() -> list[str]:
    return (ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines()


def compose_spec_schema() -> dict[str, Any]:
    # check-jsonschema vendors the official schema; `check-jsonschema --builtin-schema
    # vendor.compose-spec` reads the same file.
    source = resources.files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json")
    schema = json.loads(source.read_text(encoding="utf-8"))
    assert isinstance(schema, dict)
    return schema


def test_compose_file_matches_the_compose_specification(compose: dict[str, Any]) -> None:
    schema = compose_spec_schema()
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator_class(schema).iter_errors(compose)]
    assert errors == []


def test_compose_defines_the_five_services(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == SERVICES


def test_worker_publishes_no_ports(compose: dict[str, Any]) -> None:
    assert "ports" not in compose["services"]["worker"]


def test_worker_scales_with_replicas(compose: dict[str, Any]) -> None:
    assert compose["services"]["worker"]["deploy"]["replicas"] == 2


def test_server_publishes_port_8000(compose: dict[str, Any]) -> None:
    assert compose["services"]["server"]["ports"] == ["8000:8000"]


@pytest.mark.parametrize("service", LONG_RUNNING_APP_SERVICES)
def test_app_services_wait_for_migrations_and_redis(compose: dict[str, Any], service: str) -> None:
    depends_on = compose["services"][service]["depends_on"]
    assert depends_on["migrate"] == {"condition": "service_completed_successfully"}
    assert depends_on["redis"] == {"condition": "service_healthy"}


def test_migrate_runs_once_after_postgres_is_healthy(compose: dict[str, Any]) -> None:
    migrate = compose["services"]["migrate"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"] == {"condition": "service_healthy"}


@pytest.mark.parametrize("service", ["postgres", "redis", "server"])
def test_service_has_a_healthcheck(compose: dict[str, Any], service: str) -> None:
    assert compose["services"][service]["healthcheck"]["test"]


def test_server_healthcheck_probes_readyz(compose: dict[str, Any]) -> None:
    assert any("/readyz" in part for part in compose["services"]["server"]["healthcheck"]["test"])


def test_postgres_data_lives_in_a_named_volume(compose: dict[str, Any]) -> None:
    assert "pgdata" in compose["volumes"]
    assert "pgdata:/var/lib/postgresql/data" in compose["services"]["postgres"]["volumes"]


@pytest.mark.parametrize("service", APP_SERVICES)
def test_app_services_share_the_environment(compose: dict[str, Any], service: str) -> None:
    environment = compose["services"][service]["environment"]
    assert environment["DATABASE_URL"] == RUNTIME_URL
    assert environment["REDIS_URL"] == "redis://redis:6379/0"


def test_only_migrate_logs_in_as_the_tables_owner(compose: dict[str, Any]) -> None:
    """Least privilege: the image's POSTGRES_USER owns the tables and migrates; the server and
    workers log in as the runtime role, which `invoicing migrate` creates."""
    owner = compose["services"]["postgres"]["environment"]["POSTGRES_USER"]
    migrate = compose["services"]["migrate"]["environment"]
    assert urlsplit(migrate["MIGRATION_DATABASE_URL"]).username == owner
    assert urlsplit(RUNTIME_URL).username == "invoicing_runtime" != owner
    for service in LONG_RUNNING_APP_SERVICES:
        assert "MIGRATION_DATABASE_URL" not in compose["services"][service]["environment"]


@pytest.mark.parametrize("service", APP_SERVICES)
def test_secret_key_comes_from_the_host_environment(compose: dict[str, Any], service: str) -> None:
    secret = compose["services"][service]["environment"]["SECRET_KEY"]
    assert re.fullmatch(r"\$\{SECRET_KEY:\?[^}]*\}", secret)


def test_dockerfile_runs_as_a_non_root_user(dockerfile_lines: list[str]) -> None:
    users = [line.split(maxsplit=1)[1].strip() for line in dockerfile_lines if line.startswith("USER ")]
    assert users, "the Dockerfile has no USER instruction"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}


def test_dockerfile_starts_the_server(dockerfile_lines: list[str]) -> None:
    assert 'CMD ["invoicing", "server", "--host", "0.0.0.0", "--port", "8000"]' in dockerfile_lines


def test_dockerfile_copies_only_paths_that_exist(dockerfile_lines: list[str]) -> None:
    sources = [line.split()[1] for line in dockerfile_lines if line.startswith("COPY ")]
    missing = [source for source in sources if not (ROOT / source).exists()]
    assert sources
    assert not missing, f"COPY of missing paths breaks the build: {missing}"


def test_dockerfile_installs_every_package_of_the_project(dockerfile_lines: list[str]) -> None:
    copied = {line.split()[1] for line in dockerfile_lines if line.startswith("COPY ")}
    assert {"invoicing", "server", "worker", "cli", "devtools", "migrations"} <= copied


def test_dockerfile_puts_what_the_server_reads_from_its_working_directory_there(
    dockerfile_lines: list[str],
) -> None:
    # The packages are installed into site-packages; migrations and web are looked up under the
    # working directory (server/pages.py: web_dir), so without them the server cannot start.
    copies = {tuple(line.split()[1:]) for line in dockerfile_lines if line.startswith("COPY ")}
    assert ("migrations", "./migrations") in copies
    assert ("web", "./web") in copies
