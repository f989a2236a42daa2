// isoTime: Date.prototype.toISOString's text without calling it (src/iso-time.ts says why).
import { afterEach, describe, expect, it, vi } from 'vitest';
import { isoTime, isoTimeCached } from '../../src/iso-time.js';

/** Date.UTC without its mapping of years 0-99 to 1900-1999. */
function utc(year: number, month: number, day: number, h = 0, m = 0, s = 0, ms = 0): number {
  return new Date(0).setUTCFullYear(year, month, day) + ((h * 60 + m) * 60 + s) * 1000 + ms;
}

describe('isoTime', () => {
  afterEach(() => vi.restoreAllMocks());

  it('writes what toISOString writes, over random times and the edges of each field', () => {
    const times = [0, 1, 9, 10, 99, 100, 999, 1000, 59_999, 86_399_999, Date.UTC(2024, 1, 29, 23, 59, 59, 7), Date.UTC(999, 0, 1), Date.UTC(9999, 11, 31, 23, 59, 59, 999), -1, utc(0, 0, 1), utc(5, 6, 7, 8, 9, 10, 11)];
    for (let i = 0; i < 2000; i++) times.push(Math.floor(Math.random() * 4e12) - 1e12);
    const want = times.map((t) => new Date(t).toISOString());
    expect(times.map(isoTime)).toEqual(want);
  });

  it('does not call toISOString for years 0-9999 (its first call loads ICU time-zone tables), and hands it the rest', () => {
    const spy = vi.spyOn(Date.prototype, 'toISOString');
    expect(isoTime(Date.UTC(2025, 0, 2, 3, 4, 5, 678))).toBe('2025-01-02T03:04:05.678Z');
    expect(isoTime(utc(5, 6, 7, 8, 9, 10, 11))).toBe('0005-07-07T08:09:10.011Z');
    expect(spy).not.toHaveBeenCalled();
    expect(isoTime(Date.UTC(10000, 0, 1))).toBe('+010000-01-01T00:00:00.000Z');
    expect(isoTime(Date.UTC(-1, 0, 1))).toBe('-000001-01-01T00:00:00.000Z');
    expect(() => isoTime(Number.NaN)).toThrow(RangeError);
  });

  it('isoTimeCached writes the same text, for times in order, out of order and across minutes, days and years', () => {
    const times: number[] = [];
    let t = Date.UTC(2024, 11, 31, 23, 58, 0, 0);
    for (let i = 0; i < 3000; i++) times.push((t += Math.floor(Math.random() * 120)));
    times.push(Date.UTC(2025, 0, 1), Date.UTC(2025, 0, 1) - 1, Date.UTC(9999, 11, 31, 23, 59, 59, 999), Date.UTC(10000, 0, 1), Date.UTC(-1, 0, 1), -1, 0, 59_999, 60_000);
    for (let i = 0; i < 2000; i++) times.push(Math.floor(Math.random() * 4e12) - 1e12);
    expect(times.map(isoTimeCached)).toEqual(times.map((x) => new Date(x).toISOString()));
    expect(isoTimeCached(1.5)).toBe(new Date(1.5).toISOString());
    expect(() => isoTimeCached(Number.NaN)).toThrow(RangeError);
  });
});
