// The unified diff behind `weft diff`. Output follows `diff -u`: ---/+++ headers, @@ hunks
// with 3 lines of context, a count of 1 left out of the hunk range.
//
// The edit script comes from the `diff` package (Myers' O(ND) algorithm, as GNU diff and git
// use). Both texts can come from hostile places (a file, an etcd value), so the search is
// bounded: past MAX_EDIT_LINES changed lines it gives up and the diff shows the whole old
// text removed and the whole new text added, which is still a correct patch.
import { structuredPatch, type StructuredPatchHunk } from 'diff';

/** Changed lines beyond which the shortest edit is not searched for (work is O((N+M) x this)). */
export const MAX_EDIT_LINES = 2000;

/** Every line ends with a newline, so a missing final one is not shown as a change of its own. */
function terminated(text: string): string {
  return text === '' || text.endsWith('\n') ? text : `${text}\n`;
}

function lines(text: string): string[] {
  return text === '' ? [] : text.slice(0, -1).split('\n');
}

/** One hunk replacing everything: the answer when the edit is too large to search. */
function replaceAll(a: string, b: string): StructuredPatchHunk[] {
  const old = lines(a);
  const neu = lines(b);
  return [
    {
      oldStart: 1,
      oldLines: old.length,
      newStart: 1,
      newLines: neu.length,
      lines: [...old.map((l) => `-${l}`), ...neu.map((l) => `+${l}`)],
    },
  ];
}

/** diff -u's range: start,count; "start" alone for one line; an empty side starts one line earlier. */
function range(start: number, count: number): string {
  if (count === 0) return `${start - 1},0`;
  return count === 1 ? String(start) : `${start},${count}`;
}

/** The unified diff of two texts, or '' when they are equal. */
export function unifiedDiff(before: string, after: string, fromName: string, toName: string, context = 3): string {
  if (before === after) return '';
  const a = terminated(before);
  const b = terminated(after);
  const patch = structuredPatch(fromName, toName, a, b, undefined, undefined, { context, maxEditLength: MAX_EDIT_LINES });
  const hunks = patch ? patch.hunks : replaceAll(a, b);
  let out = `--- ${fromName}\n+++ ${toName}\n`;
  for (const h of hunks) {
    out += `@@ -${range(h.oldStart, h.oldLines)} +${range(h.newStart, h.newLines)} @@\n`;
    for (const line of h.lines) out += `${line}\n`;
  }
  return out;
}
