// What the selection would invoice, per currency, beside "Create N invoices": ticked orders
// summed here in integer minor units; "all matching" asked of the server, which sums every
// matching order by the invoice rules.

import { getJSON, withQuery } from "./api.js";
import * as fmt from "./format.js";

/** Ticked orders' totals per currency: { currencies: [{ currency, orders, total }], withoutTotal }. */
export function sumOrders(orders) {
  const sums = new Map();
  let withoutTotal = 0;
  for (const order of orders) {
    const amount = order.total === null ? null : fmt.toMinor(order.total);
    if (!amount) {
      withoutTotal += 1;
      continue;
    }
    const sum = sums.get(order.currency) || { orders: 0, minor: 0n, digits: amount.digits };
    sum.orders += 1;
    sum.minor += amount.minor;
    sums.set(order.currency, sum);
  }
  const currencies = [...sums.entries()]
    .map(([currency, sum]) => ({ currency, orders: sum.orders, total: fmt.minorText(sum.minor, sum.digits) }))
    .sort((a, b) => b.orders - a.orders || a.currency.localeCompare(b.currency));
  return { currencies, withoutTotal };
}

/** "€1,234.50 · $99.00", and how many have no total. */
export function totalsText({ currencies, withoutTotal }) {
  const parts = currencies.map((entry) => fmt.money(entry.total, entry.currency));
  if (withoutTotal) {
    const them = withoutTotal === 1 ? "it" : "they";
    parts.push(`${fmt.plural(withoutTotal, "order", "orders")} without a total: ${them} will fail as ${them} stand (their lines cannot be invoiced)`);
  }
  return parts.join(" · ");
}

/** The server's totals of every order matching `filter` that a batch would take now. */
export async function matchingTotals(filter, { signal } = {}) {
  const answer = await getJSON(withQuery("/api/sales-orders/totals", filter), { signal });
  return { currencies: answer.currencies, withoutTotal: answer.without_total, orders: answer.orders };
}
