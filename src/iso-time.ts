// A time as Date.prototype.toISOString writes it ("2025-01-02T03:04:05.678Z"), from the UTC
// fields. Why not toISOString: in Node 20 its first call makes V8 ask ICU for the local time
// zone's names, which loads ICU's time-zone tables: ~0.8 MB of the node binary's pages stay
// in every process that ever printed a time that way (the agent does, on every log line).
// The UTC getters need no time zone. Years outside 0-9999 (six digits and a sign) are left
// to toISOString.

function pad2(n: number): string {
  return n < 10 ? `0${n}` : `${n}`;
}

/** `ms` (epoch milliseconds) as toISOString writes it; throws RangeError on an invalid time, as it does. */
export function isoTime(ms: number): string {
  const d = new Date(ms);
  const year = d.getUTCFullYear();
  if (!(year >= 0 && year <= 9999)) return d.toISOString();
  const milli = d.getUTCMilliseconds();
  return (
    `${year < 1000 ? `${year}`.padStart(4, '0') : year}-${pad2(d.getUTCMonth() + 1)}-${pad2(d.getUTCDate())}` +
    `T${pad2(d.getUTCHours())}:${pad2(d.getUTCMinutes())}:${pad2(d.getUTCSeconds())}.${milli < 10 ? `00${milli}` : milli < 100 ? `0${milli}` : milli}Z`
  );
}

let minute = Number.NaN;
let minuteText = '';

/**
 * isoTime for times that come in order (a log line's): the text up to the minute is kept
 * from the last call, so a line costs no Date and no field getters, only the seconds and
 * milliseconds. The same text as isoTime for every time.
 */
export function isoTimeCached(ms: number): string {
  if (!Number.isInteger(ms)) return isoTime(ms);
  const m = Math.floor(ms / 60_000);
  if (m !== minute) {
    const text = isoTime(ms);
    // Years 0-9999 only: the others' text ("+010000-...") is longer; never cached.
    if (text.length !== 24) return text;
    minute = m;
    minuteText = text.slice(0, 17);
  }
  const inMinute = ms - m * 60_000;
  const s = Math.floor(inMinute / 1000);
  const milli = inMinute - s * 1000;
  return `${minuteText}${s < 10 ? '0' : ''}${s}.${milli < 10 ? '00' : milli < 100 ? '0' : ''}${milli}Z`;
}
