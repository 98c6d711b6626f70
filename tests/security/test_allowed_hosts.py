"""Only ALLOWED_HOSTS are served: a forged Host header never reaches a redirect (issue 12)."""

from __future__ import annotations

import pytest

from invoicing.infra.database import Database
from invoicing.kernel.errors import ConfigurationError
from invoicing.kernel.settings import Settings
from tests.conftest import make_settings
from tests.support.app import api_client
from tests.support.factories import create_organization


async def test_another_host_gets_400_and_no_redirect_to_it(settings: Settings) -> None:
    async with api_client(settings) as client:
        forged = [
            await client.get(path, headers={"Host": host})
            for path in ("/jobs/", "/", "/login", "/api/me")
            for host in ("evil.example", "evil.example:8000", "testserver.evil.example")
        ]
        ours = await client.get("/jobs/")
    for answer in forged:
        assert answer.status_code == 400, (answer.request.headers["host"], answer.url)
        assert "location" not in answer.headers
        assert "evil" not in answer.text
        assert answer.headers["x-frame-options"] == "DENY", "the security headers still apply"
    assert ours.status_code == 307, "the control: our own host is redirected as before"
    assert ours.headers["location"] == "http://testserver/jobs"


async def test_a_forged_host_cannot_log_in_or_call_the_api(settings: Settings, database: Database) -> None:
    organization = await create_organization(database)
    async with api_client(settings) as client:
        api = await client.get(
            "/api/batch-jobs", headers={**organization.admin.headers, "Host": "evil.example"}
        )
        login = await client.post(
            "/login",
            data={"email": organization.admin.email, "password": "x"},
            headers={"Host": "evil.example", "Origin": "http://evil.example"},
        )
    assert api.status_code == login.status_code == 400


async def test_probes_answer_whatever_the_host(settings: Settings) -> None:
    """Orchestrators call them by the container's address, not the public name."""
    async with api_client(settings) as client:
        for path in ("/healthz", "/readyz"):
            assert (await client.get(path, headers={"Host": "10.1.2.3:8000"})).status_code == 200


async def test_the_default_serves_the_quick_start_hosts_only(database_url: str, redis_url: str) -> None:
    defaults = make_settings(database_url, redis_url).with_overrides(
        allowed_hosts=Settings.from_env({}).allowed_hosts
    )
    async with api_client(defaults) as client:
        statuses = {
            host: (await client.get("/login", headers={"Host": host})).status_code
            for host in ("127.0.0.1:8000", "localhost:8000", "[::1]:8000", "evil.example", "testserver")
        }
    assert statuses == {
        "127.0.0.1:8000": 200,
        "localhost:8000": 200,
        "[::1]:8000": 200,
        "evil.example": 400,
        "testserver": 400,
    }


@pytest.mark.parametrize(
    "value", ["http://invoices.example.com", "invoices.example.com:443", "*example.com", " , "]
)
def test_a_malformed_allowed_hosts_stops_the_process_naming_it(value: str) -> None:
    with pytest.raises(ConfigurationError, match="ALLOWED_HOSTS"):
        Settings.from_env({"ALLOWED_HOSTS": value})


def test_wildcards_and_case_are_understood() -> None:
    hosts = Settings.from_env({"ALLOWED_HOSTS": "Invoices.Example.com, *.example.org , *"}).allowed_hosts
    assert hosts == ("invoices.example.com", "*.example.org", "*")


async def test_star_allows_any_host(database_url: str, redis_url: str) -> None:
    anything = make_settings(database_url, redis_url, ALLOWED_HOSTS="*")
    async with api_client(anything) as client:
        response = await client.get("/login", headers={"Host": "anything.example"})
    assert response.status_code == 200
