"""Which address a request comes from, behind reverse proxies that we were told to trust.

``X-Forwarded-For`` is a list that every proxy extends on the right with the address it was
connected from; anything to the left of what a trusted proxy appended may have been written by
the client. So the list is read from the right, past our own proxies, and the first address
that is not one of them is the client. Read from the left, or from an untrusted peer, it would
let a client choose its own address, and with it a fresh per-address login counter.
"""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address

from starlette.requests import HTTPConnection

Network = IPv4Network | IPv6Network
Address = IPv4Address | IPv6Address

#: The address of a request whose transport has none (a Unix socket).
UNKNOWN = "unknown"


def client_address(peer: str | None, forwarded_for: Sequence[str], trusted: Sequence[Network]) -> str:
    """The client's address, from the connection's ``peer`` and its X-Forwarded-For values.

    * A peer that is not a trusted proxy is the client: X-Forwarded-For is ignored, so a client
      connecting directly cannot spoof it.
    * From a trusted peer, the header's entries (several header lines count as one list, in
      order) are read from the right; trusted proxies are skipped and the first other address
      is the answer. If every entry is a trusted proxy, the leftmost one is.
    * An entry that is not a bare IP address (empty, a name, with a port) stops the walk and
      the last trusted hop is the answer. Skipping it would mean believing entries whose writer
      is unknown; keying on its text would let a client rotate it. The proxy's own address
      cannot be chosen by a client: at worst, the clients behind a misconfigured proxy share
      one counter, which errs towards limiting, never towards letting guesses through.

    Addresses come back in canonical form (IPv4-mapped IPv6 as IPv4), so spellings of one
    address share one counter. A peer that is not an IP address is returned as it is.
    """
    if peer is None:
        return UNKNOWN
    hop = _parse(peer)
    if hop is None:
        return peer
    if not _is_trusted(hop, trusted):
        return str(hop)
    for entry in reversed([entry for value in forwarded_for for entry in value.split(",")]):
        address = _parse(entry.strip())
        if address is None:
            break
        hop = address
        if not _is_trusted(hop, trusted):
            break
    return str(hop)


def request_address(connection: HTTPConnection, trusted: Sequence[Network]) -> str:
    """:func:`client_address` of a request or WebSocket handshake."""
    peer = connection.client.host if connection.client else None
    return client_address(peer, connection.headers.getlist("x-forwarded-for"), trusted)


def _parse(text: str) -> Address | None:
    try:
        address = ip_address(text)
    except ValueError:
        return None
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _is_trusted(address: Address, trusted: Sequence[Network]) -> bool:
    # A v4 address is never inside a v6 network and vice versa: `in` answers False.
    return any(address in network for network in trusted)
