"""Settings from the environment: TRUSTED_PROXIES (refused at start when malformed, handed to
uvicorn) and the WebSocket limits."""

from __future__ import annotations

from ipaddress import ip_network

import pytest

from cli.commands import forwarded_allow_ips, uvicorn_security_options
from invoicing.kernel.errors import ConfigurationError
from invoicing.kernel.settings import Settings


def test_no_proxy_is_trusted_by_default() -> None:
    assert Settings.from_env({}).trusted_proxies == ()


def test_trusted_proxies_are_addresses_and_networks_of_both_families() -> None:
    settings = Settings.from_env({"TRUSTED_PROXIES": " 10.0.0.0/8, 192.0.2.1 ,2001:db8::/32,::1"})
    assert settings.trusted_proxies == (
        ip_network("10.0.0.0/8"),
        ip_network("192.0.2.1/32"),
        ip_network("2001:db8::/32"),
        ip_network("::1/128"),
    )


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("proxy.internal", id="host-name"),
        pytest.param("10.0.0.0/33", id="prefix-too-long"),
        pytest.param("10.0.0.1/8", id="host-bits-set"),
        pytest.param("10.0.0.1;10.0.0.2", id="wrong-separator"),
    ],
)
def test_a_malformed_trusted_proxy_stops_the_start_naming_the_variable(value: str) -> None:
    with pytest.raises(ConfigurationError, match="TRUSTED_PROXIES"):
        Settings.from_env({"TRUSTED_PROXIES": value})


def test_uvicorn_reads_no_forwarded_header_when_no_proxy_is_configured() -> None:
    # Not even from loopback, uvicorn's default: a proxy-less client would pick its address.
    assert forwarded_allow_ips(Settings.from_env({})) is None
    assert uvicorn_security_options(Settings.from_env({}))["proxy_headers"] is False


def test_uvicorn_believes_forwarded_headers_from_the_trusted_proxies_only() -> None:
    settings = Settings.from_env({"TRUSTED_PROXIES": "10.0.0.0/8, 127.0.0.1"})
    assert forwarded_allow_ips(settings) == "10.0.0.0/8,127.0.0.1/32"
    options = uvicorn_security_options(settings)
    assert options["proxy_headers"] is True
    assert options["forwarded_allow_ips"] == "10.0.0.0/8,127.0.0.1/32"


def test_uvicorn_refuses_websocket_frames_past_the_message_limit() -> None:
    from server.ws import MAX_CLIENT_FRAME_BYTES, MAX_CLIENT_MESSAGE

    assert uvicorn_security_options(Settings.from_env({}))["ws_max_size"] == MAX_CLIENT_FRAME_BYTES
    assert MAX_CLIENT_FRAME_BYTES == 4 * MAX_CLIENT_MESSAGE  # 4096 characters of UTF-8, at most


def test_the_websocket_limits_have_defaults_and_read_the_environment() -> None:
    defaults = Settings.from_env({})
    assert (defaults.ws_max_sockets_per_user, defaults.ws_max_sockets_per_org) == (60, 500)
    assert (defaults.ws_messages_per_second, defaults.ws_message_burst) == (5.0, 10)
    configured = Settings.from_env(
        {"WS_MAX_SOCKETS_PER_USER": "3", "WS_MAX_SOCKETS_PER_ORG": "40", "WS_MESSAGES_PER_SECOND": "0.5",
         "WS_MESSAGE_BURST": "2"}
    )  # fmt: skip
    assert (configured.ws_max_sockets_per_user, configured.ws_max_sockets_per_org) == (3, 40)
    assert (configured.ws_messages_per_second, configured.ws_message_burst) == (0.5, 2)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("WS_MAX_SOCKETS_PER_USER", "0"),
        ("WS_MAX_SOCKETS_PER_ORG", "many"),
        ("WS_MESSAGES_PER_SECOND", "0"),
        ("WS_MESSAGE_BURST", "2.5"),
    ],
)
def test_a_websocket_limit_that_would_refuse_everything_or_is_no_number_stops_the_start(
    name: str, value: str
) -> None:
    with pytest.raises(ConfigurationError, match=name):
        Settings.from_env({name: value})
