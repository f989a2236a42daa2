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
