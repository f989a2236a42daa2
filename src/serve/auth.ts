// Who is asking, and may they: kube-apiserver's static token file and client certificates
// (user = CN, groups = O). Anonymous requests are refused; members of weft:admins may
// write, every other authenticated user may only read.
import { namedError } from '../api/errors.js';
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { ApiError } from './status.js';

export const ADMIN_GROUP = 'weft:admins';

export interface User {
  name: string;
  uid?: string;
  groups: string[];
}

export class TokenFileError extends namedError('TokenFileError') {}

/** One CSV line: fields separated by commas, a field may be "quoted" (with "" for a quote). */
function csvFields(line: string): string[] | undefined {
  const out: string[] = [];
  let i = 0;
  while (i <= line.length) {
    if (line[i] === '"') {
      let value = '';
      i++;
      for (;;) {
        if (i >= line.length) return undefined;
        if (line[i] === '"') {
          if (line[i + 1] === '"') {
            value += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        value += line[i++];
      }
      out.push(value);
      if (i < line.length && line[i] !== ',') return undefined;
      i++;
    } else {
      const end = line.indexOf(',', i);
      out.push(line.slice(i, end === -1 ? line.length : end));
      i = end === -1 ? line.length + 1 : end + 1;
    }
  }
  return out;
}

const digest = (token: string) => createHash('sha256').update(token).digest();

/** Tokens by their SHA-256: lookups compare digests in constant time, never the tokens. */
export class TokenTable {
  private readonly entries: { digest: Buffer; user: User; token: string }[] = [];

  /** Parses kube-apiserver's format: token,user,uid[,"group1,group2"]. */
  static parse(text: string, file: string): TokenTable {
    const table = new TokenTable();
    text.split(/\r?\n/).forEach((raw, i) => {
      const line = raw.trim();
      if (!line || line.startsWith('#')) return;
      const fields = csvFields(line);
      if (!fields || fields.length < 3 || !fields[0] || !fields[1]) {
        throw new TokenFileError(`${file}:${i + 1}: expected token,user,uid[,"group1,group2"]`);
      }
      const groups = (fields[3] ?? '').split(',').map((g) => g.trim()).filter(Boolean);
      table.add(fields[0], { name: fields[1], ...(fields[2] ? { uid: fields[2] } : {}), groups });
    });
    return table;
  }

  add(token: string, user: User): void {
    this.entries.push({ digest: digest(token), user, token });
  }

  lookup(token: string): User | undefined {
    const d = digest(token);
    let found: User | undefined;
    for (const e of this.entries) if (timingSafeEqual(e.digest, d)) found ??= e.user;
    return found;
  }

  /** The first token of an admin, for a kubeconfig. */
  adminToken(): { token: string; user: User } | undefined {
    const e = this.entries.find((x) => x.user.groups.includes(ADMIN_GROUP));
    return e ? { token: e.token, user: e.user } : undefined;
  }
}

/** A token for a generated admin user, when no token file is given. */
export function generatedAdmin(): { token: string; user: User } {
  return { token: randomBytes(32).toString('hex'), user: { name: 'weft-admin', groups: [ADMIN_GROUP] } };
}

function asList(v: string | string[] | undefined): string[] {
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
}

export class Authenticator {
  constructor(
    private readonly tokens: TokenTable,
    private readonly clientCerts: boolean,
  ) {}

  authenticate(req: IncomingMessage): User {
    const header = req.headers.authorization;
    if (header !== undefined) {
      const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
      const user = m ? this.tokens.lookup(m[1]!) : undefined;
      if (user) return user;
      throw new ApiError(401, 'Unauthorized', 'Unauthorized');
    }
    if (this.clientCerts) {
      const socket = req.socket as TLSSocket;
      if (socket.authorized) {
        const cert = socket.getPeerCertificate();
        const cn = asList(cert.subject?.CN)[0];
        if (cn) return { name: cn, groups: asList(cert.subject?.O) };
      }
    }
    throw new ApiError(401, 'Unauthorized', 'Unauthorized');
  }
}

/** Reads are open to every authenticated user; writes need weft:admins. */
export function authorize(user: User, verb: string, plural: string, name: string | undefined): void {
  if (['get', 'list', 'watch'].includes(verb) || user.groups.includes(ADMIN_GROUP)) return;
  const what = name !== undefined ? `${plural}.weft.io "${name}"` : `${plural}.weft.io`;
  throw new ApiError(
    403,
    'Forbidden',
    `${what} is forbidden: User "${user.name}" cannot ${verb} resource "${plural}" in API group "weft.io" at the cluster scope: only members of ${ADMIN_GROUP} may write`,
    { ...(name !== undefined ? { name } : {}), group: 'weft.io', kind: plural },
  );
}
