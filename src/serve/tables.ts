// meta.k8s.io/v1 Tables: what `kubectl get` asks for, with the columns of `weft get` (the -o
// wide ones at priority 1, so kubectl shows them only with -o wide).
import type { Printable } from '../api/types.js';
import type { KindList } from './kinds.js';

export function wantsTable(accept: string | undefined): boolean {
  return accept !== undefined && /as=Table/.test(accept) && /g=meta\.k8s\.io/.test(accept);
}

export type IncludeObject = 'None' | 'Metadata' | 'Object';

export function includeObjectOf(value: string | null): IncludeObject {
  return value === 'None' || value === 'Object' ? value : 'Metadata';
}

export function columnDefinitions(list: KindList): Record<string, unknown>[] {
  return list.cells.header.map((name, i) => ({
    name,
    type: 'string',
    format: name === 'NAME' ? 'name' : '',
    description: '',
    priority: i < list.narrow ? 0 : 1,
  }));
}

function rowObject(o: Printable, include: IncludeObject): Record<string, unknown> | undefined {
  if (include === 'None') return undefined;
  if (include === 'Object') return o as unknown as Record<string, unknown>;
  return { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: o.metadata };
}

/** A Table of the given rows of a list (by index), at a resourceVersion. */
export function tableOf(list: KindList, rows: number[], resourceVersion: string, include: IncludeObject, objects: Printable[] = list.items): Record<string, unknown> {
  return {
    kind: 'Table',
    apiVersion: 'meta.k8s.io/v1',
    metadata: { resourceVersion },
    columnDefinitions: columnDefinitions(list),
    rows: rows.map((i) => {
      const object = rowObject(objects[i]!, include);
      return { cells: list.cells.rows[i]!, ...(object ? { object } : {}) };
    }),
  };
}
