// A job's priority in words, for every page that shows jobs: urgent runs first (admins only),
// normal is the default, low waits for the rest (and climbs as it waits).

import { el } from "./ui.js";

export const PRIORITIES = ["urgent", "normal", "low"];

const PRIORITY_TEXT = { urgent: "Urgent", normal: "Normal", low: "Low" };

/** "Urgent", "Normal", "Low"; an unknown value as it came. */
export function priorityText(priority) {
  return PRIORITY_TEXT[priority] || String(priority || "");
}

/**
 * A small badge saying the job's priority; screen readers hear "Priority: Urgent" (`named`:
 * false where a column or term already says "Priority"). With `quiet`, a normal job gets none
 * (null): most jobs are normal, and a badge on each is noise.
 */
export function priorityBadge(priority, { quiet = false, named = true } = {}) {
  if (!priority || (quiet && priority === "normal")) return null;
  return el("span", { className: `badge badge--priority badge--${priority}`, dataset: { priority } }, [
    named ? el("span", { className: "visually-hidden", text: "Priority: " }) : null,
    document.createTextNode(priorityText(priority)),
  ]);
}
