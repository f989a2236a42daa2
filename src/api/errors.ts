// Typed errors. Each carries what an operator needs to act on it; the CLI and the agent
// log or print them once, at the edge, and map them to exit codes.

/** One problem in user input, located as precisely as we can. */
export interface FieldProblem {
  /** Dotted path inside the object, e.g. "spec.backend.vni". */
  field: string;
  message: string;
  file?: string;
  line?: number;
  /** "network/default" style reference, when known. */
  object?: string;
}

export function formatProblem(p: FieldProblem): string {
  const where = p.file ? `${p.file}:${p.line ?? 1}: ` : '';
  const obj = p.object ? `${p.object}: ` : '';
  const field = p.field ? `${p.field}: ` : '';
  return `${where}${obj}${field}${p.message}`;
}

/**
 * The base of an error class that adds nothing but its name: `class X extends namedError('X') {}`.
 * The name is given as a string rather than read from the class because a bundler may rename
 * classes, and the name is what logs and messages show.
 */
export function namedError<N extends string>(name: N) {
  return class extends Error {
    override readonly name: N = name;
  };
}

/** Invalid user input: every problem found, not just the first. Exit code 1. */
export class ValidationError extends Error {
  override readonly name = 'ValidationError';
  constructor(readonly problems: FieldProblem[]) {
    super(problems.map(formatProblem).join('\n'));
  }
}

/** The object changed since the caller read it (stale resourceVersion, lost CAS). Exit 1. */
export class ConflictError extends namedError('ConflictError') {}

/** The named object does not exist. Exit 1. */
export class NotFoundError extends namedError('NotFoundError') {}

/** A user request that is well-formed but refused (e.g. would orphan leases). Exit 1. */
export class RefusedError extends namedError('RefusedError') {}

export function isUserError(err: unknown): boolean {
  return (
    err instanceof ValidationError ||
    err instanceof ConflictError ||
    err instanceof NotFoundError ||
    err instanceof RefusedError
  );
}
