"""What an intruder tries with the ids of another organization: every call that takes one."""

from __future__ import annotations


def probes(ids: dict[str, str]) -> list[tuple[str, str]]:
    return [
        ("GET", f"/api/batch-jobs/{ids['job']}"),
        ("GET", f"/api/batch-jobs/{ids['job']}/items"),
        ("POST", f"/api/batch-jobs/{ids['job']}/cancel"),
        ("POST", f"/api/batch-jobs/{ids['job']}/retry"),
        ("GET", f"/api/invoices/{ids['invoice']}"),
        ("POST", f"/api/sales-orders/{ids['order']}/invoice"),
        ("POST", f"/api/tokens/{ids['token']}/revoke"),
    ]
