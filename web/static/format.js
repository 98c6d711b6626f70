// Human formats for numbers, money, dates and durations (browser locale).

const integer = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
const moneyFormats = new Map();

export function count(value) {
  return integer.format(value ?? 0);
}

export function plural(n, one, many) {
  return `${count(n)} ${n === 1 ? one : many}`;
}

export function money(amount, currency) {
  let format = moneyFormats.get(currency);
  if (!format) {
    try {
      format = new Intl.NumberFormat(undefined, { style: "currency", currency });
    } catch {
      format = { format: (value) => `${value} ${currency}` };
    }
    moneyFormats.set(currency, format);
  }
  // Intl formats a decimal string exactly; a Number would round amounts past 2^53 minor units.
  return format.format(typeof amount === "string" ? amount : Number(amount));
}

export function isoDate(text) {
  if (!text) return "—";
  const [year, month, day] = text.slice(0, 10).split("-").map(Number);
  return new Date(year, month - 1, day).toLocaleDateString(undefined, {
    year: "numeric",
    month: "short",
    day: "numeric",
  });
}

export function dateTime(text) {
  if (!text) return "—";
  return new Date(text).toLocaleString(undefined, {
    year: "numeric",
    month: "short",
    day: "numeric",
    hour: "2-digit",
    minute: "2-digit",
  });
}

export function rate(perSecond) {
  if (perSecond === null || perSecond === undefined || !Number.isFinite(perSecond)) return "—";
  const digits = perSecond < 10 ? 1 : 0;
  const text = perSecond.toLocaleString(undefined, { minimumFractionDigits: digits, maximumFractionDigits: digits });
  return `${text} invoices/s`;
}

/** "about 12 s", "about 3 min", "about 1 h 5 min". */
export function eta(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "—";
  if (seconds < 1) return "less than a second";
  if (seconds < 60) return `about ${Math.ceil(seconds)} s`;
  if (seconds < 3600) return `about ${Math.round(seconds / 60)} min`;
  const hours = Math.floor(seconds / 3600);
  const minutes = Math.round((seconds % 3600) / 60);
  return minutes ? `about ${hours} h ${minutes} min` : `about ${hours} h`;
}

/** An elapsed time: "under 0.1 s", "0.8 s", "42 s", "3 min 5 s", "1 h 2 min". */
export function duration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds) || seconds < 0) return "—";
  if (seconds < 0.05) return "under 0.1 s";
  if (seconds < 9.95) return `${seconds.toFixed(1)} s`;
  // Rounded once, then split: 59.6 s is "1 min", never "60 s" or "0 min 60 s".
  const whole = Math.round(seconds);
  if (whole < 60) return `${whole} s`;
  if (whole < 3600) {
    const rest = whole % 60;
    return rest ? `${Math.floor(whole / 60)} min ${rest} s` : `${Math.floor(whole / 60)} min`;
  }
  const minutes = Math.round(seconds / 60);
  const hours = Math.floor(minutes / 60);
  return minutes % 60 ? `${hours} h ${minutes % 60} min` : `${hours} h`;
}

/** Seconds between two ISO instants, or null when either is missing. */
export function secondsBetween(from, to) {
  if (!from || !to) return null;
  return (new Date(to).getTime() - new Date(from).getTime()) / 1000;
}

export function percentOf(done, total) {
  if (!total) return 0;
  // Floor: 100 % only when everything is processed.
  return Math.min(100, Math.floor((done * 100) / total));
}

/**
 * What a Retry button says. A retry takes the job's orders that still have no invoice and that
 * no running job holds, so the count is the server's to say (the new job's card shows it).
 */
export function retryLabel(job) {
  return job.failed_items > 0 && job.cancelled_items === 0 && job.status === "completed"
    ? "Retry failed orders"
    : "Retry unfinished orders";
}

/**
 * An amount string with exactly its currency's minor digits ("1234.50", "-3", "12.345") as
 * integer minor units: { minor: BigInt, digits }. Null for anything else. No floating point.
 */
export function toMinor(text) {
  const match = /^(-?)(\d+)(?:\.(\d+))?$/.exec(String(text ?? ""));
  if (!match) return null;
  const [, sign, whole, fraction = ""] = match;
  const minor = BigInt(whole + fraction);
  return { minor: sign ? -minor : minor, digits: fraction.length };
}

/** Integer minor units back to an exact decimal string ("123450", 2 → "1234.50"). */
export function minorText(minor, digits) {
  const negative = minor < 0n;
  const text = (negative ? -minor : minor).toString().padStart(digits + 1, "0");
  const whole = digits ? text.slice(0, -digits) : text;
  const fraction = digits ? `.${text.slice(-digits)}` : "";
  return `${negative ? "-" : ""}${whole}${fraction}`;
}

/** A sum in minor units, formatted for its currency from the exact decimal string. */
export function moneyOfMinor(minor, digits, currency) {
  return money(minorText(minor, digits), currency);
}
