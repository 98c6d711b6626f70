"""The client's address behind trusted proxies: pure, no request, no database."""

from __future__ import annotations

from ipaddress import ip_network

import pytest

from server.addresses import UNKNOWN, Network, client_address

PROXY = "10.0.0.5"
#: A load balancer's network and an IPv6 proxy.
TRUSTED: tuple[Network, ...] = (ip_network("10.0.0.0/24"), ip_network("2001:db8:ffff::/48"))


def test_without_trusted_proxies_the_peer_is_the_client() -> None:
    assert client_address("203.0.113.9", ["198.51.100.1"], ()) == "203.0.113.9"


def test_an_untrusted_peer_cannot_spoof_its_address_with_the_header() -> None:
    assert client_address("203.0.113.9", ["198.51.100.1"], TRUSTED) == "203.0.113.9"


def test_behind_a_trusted_proxy_the_address_it_appended_is_the_client() -> None:
    assert client_address(PROXY, ["198.51.100.1"], TRUSTED) == "198.51.100.1"


def test_entries_the_client_wrote_left_of_the_proxys_are_ignored() -> None:
    assert client_address(PROXY, ["1.2.3.4, 5.6.7.8, 198.51.100.1"], TRUSTED) == "198.51.100.1"


def test_a_chain_of_trusted_proxies_is_walked_from_the_right() -> None:
    assert client_address(PROXY, ["6.6.6.6, 198.51.100.1, 10.0.0.7, 10.0.0.6"], TRUSTED) == "198.51.100.1"


def test_several_header_lines_are_one_list_in_order() -> None:
    assert client_address(PROXY, ["6.6.6.6", "198.51.100.1, 10.0.0.6"], TRUSTED) == "198.51.100.1"


def test_spaces_around_entries_do_not_matter() -> None:
    assert client_address(PROXY, ["  6.6.6.6 ,198.51.100.1  ,\t10.0.0.6 "], TRUSTED) == "198.51.100.1"


def test_without_the_header_a_trusted_peer_is_the_answer() -> None:
    assert client_address(PROXY, [], TRUSTED) == PROXY


def test_when_every_entry_is_a_trusted_proxy_the_leftmost_is_the_answer() -> None:
    assert client_address(PROXY, ["10.0.0.8, 10.0.0.7"], TRUSTED) == "10.0.0.8"


@pytest.mark.parametrize(
    "malformed",
    [
        pytest.param("not-an-address", id="name"),
        pytest.param("198.51.100.1:4711", id="with-port"),
        pytest.param("[2001:db8::1]", id="bracketed"),
        pytest.param("", id="empty"),
        pytest.param("unknown", id="unknown"),
    ],
)
def test_a_malformed_entry_stops_the_walk_at_the_last_trusted_hop(malformed: str) -> None:
    assert client_address(PROXY, [f"198.51.100.1, {malformed}, 10.0.0.7"], TRUSTED) == "10.0.0.7"


def test_a_malformed_last_entry_leaves_the_trusted_peer() -> None:
    assert client_address(PROXY, ["198.51.100.1, garbage"], TRUSTED) == PROXY


def test_an_empty_header_leaves_the_trusted_peer() -> None:
    assert client_address(PROXY, [""], TRUSTED) == PROXY


def test_ipv6_clients_and_proxies_are_understood() -> None:
    assert client_address("2001:db8:ffff::1", ["2001:db8:1::7, 2001:db8:ffff::2"], TRUSTED) == "2001:db8:1::7"


def test_addresses_come_back_in_canonical_form() -> None:
    assert client_address(PROXY, ["2001:DB8:1:0:0:0:0:7"], TRUSTED) == "2001:db8:1::7"


def test_an_ipv4_mapped_peer_counts_as_its_ipv4_address() -> None:
    assert client_address("::ffff:10.0.0.5", ["198.51.100.1"], TRUSTED) == "198.51.100.1"


def test_a_peer_without_an_address_is_unknown() -> None:
    assert client_address(None, ["198.51.100.1"], TRUSTED) == UNKNOWN


def test_a_peer_that_is_not_an_ip_address_is_kept_as_it_is() -> None:
    assert client_address("testclient", ["198.51.100.1"], TRUSTED) == "testclient"
