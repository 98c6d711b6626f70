// Active jobs on page load, and the list of progress cards a page shows.

import { getJSON, withQuery } from "./api.js";

const ACTIVE_LIMIT = 100;

/** The organization's pending and processing jobs, oldest first. */
export async function fetchActiveJobs() {
  const lists = await Promise.all(
    ["processing", "pending"].map((status) =>
      getJSON(withQuery("/api/batch-jobs", { status, limit: ACTIVE_LIMIT })),
    ),
  );
  const jobs = lists.flatMap((page) => page.items);
  return jobs.sort((a, b) => String(a.created_at).localeCompare(String(b.created_at)));
}

/** The cards in one container, by job id; the container hides itself when empty. */
export class CardList {
  constructor(container, { emptyNote = null, onChange = () => {} } = {}) {
    this.container = container;
    this.emptyNote = emptyNote;
    this.onChange = onChange;
    this.cards = new Map();
    this.update();
  }

  get(jobId) {
    return this.cards.get(jobId);
  }

  has(jobId) {
    return this.cards.has(jobId);
  }

  values() {
    return [...this.cards.values()];
  }

  /** Newest first: a new card goes on top. */
  add(card) {
    this.cards.set(card.id, card);
    this.container.prepend(card.element);
    this.update();
    return card;
  }

  remove(card) {
    if (this.cards.get(card.id) !== card) return;
    this.cards.delete(card.id);
    card.destroy();
    this.update();
  }

  update() {
    const empty = this.cards.size === 0;
    if (this.emptyNote) {
      this.emptyNote.hidden = !empty;
      this.container.hidden = false;
    } else {
      this.container.hidden = empty;
    }
    this.onChange(this);
  }
}
