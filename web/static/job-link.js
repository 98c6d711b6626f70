// Links to a job's own page (/jobs/{id}), for every page that names a job.

/** The path of a job's page. */
export function jobPath(jobId) {
  return `/jobs/${encodeURIComponent(jobId)}`;
}

/** A short name for a job in a link's text: its id's first 8 characters, as in "Job 1a2b3c4d". */
export function jobName(jobId) {
  return `Job ${String(jobId).slice(0, 8)}`;
}

/**
 * An <a> to the job's page; `text` defaults to jobName(jobId). The whole id is in the
 * `data-job-link` attribute (tests and scripts find links by it).
 */
export function jobLink(jobId, text = jobName(jobId), { className = "job-link" } = {}) {
  const link = document.createElement("a");
  link.href = jobPath(jobId);
  link.className = className;
  link.dataset.jobLink = String(jobId);
  link.textContent = text;
  return link;
}
