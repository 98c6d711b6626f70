// Words for the stable codes the API reports (the codes stay in the API; people read these).
// invoicing/domain/reasons.py holds the same table for the emails; a test keeps them equal.

const REASONS = {
  order_not_found: "Order not found",
  order_not_confirmed: "Order not confirmed",
  already_invoiced: "Already invoiced",
  no_lines: "Order has no lines",
  invalid_line: "Invalid order line",
  missing_billing_info: "Customer billing details missing",
  currency_mismatch: "Currency differs from the customer's",
  amount_out_of_range: "Amount too large for an invoice",
  order_locked: "Order busy elsewhere",
  storage_rejected: "Refused by the database",
  processing_error: "Processing error",
  worker_crashed: "Worker stopped unexpectedly",
  database_error: "Database unavailable",
  internal_error: "Internal error",
  job_failed: "Job failed",
  cancelled: "Cancelled",
};

export function reasonLabel(code) {
  if (!code) return "";
  return REASONS[code] ?? code.replaceAll("_", " ").replace(/^./, (first) => first.toUpperCase());
}
