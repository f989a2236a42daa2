// --ip-masq: what flanneld installs so that containers reach the world beyond the overlay.
// Traffic leaving the cluster network from a container is masqueraded to the host's address;
// traffic between containers is left alone. The rules live in weft's own chain, replaced in
// one iptables-restore transaction (never a moment without them), with one jump from
// POSTROUTING. Rendering is pure; applying is the edge.
import { execa } from 'execa';
import type { Cidr } from '../alloc/cidr.js';

export const MASQ_CHAIN = 'WEFT-POSTRTG';

/** The iptables-restore input for the nat table, rendered from validated CIDRs only. */
export function masqRules(network: Cidr, subnet: Cidr): string {
  const n = network.toString();
  return [
    '*nat',
    `:${MASQ_CHAIN} - [0:0]`,
    `-A ${MASQ_CHAIN} -s ${n} -d ${n} -m comment --comment "weft: container to container" -j RETURN`,
    `-A ${MASQ_CHAIN} -s ${n} ! -d 224.0.0.0/4 -m comment --comment "weft: container to the world" -j MASQUERADE --random-fully`,
    `-A ${MASQ_CHAIN} ! -s ${n} -d ${subnet} -m comment --comment "weft: to local containers" -j RETURN`,
    `-A ${MASQ_CHAIN} ! -s ${n} -d ${n} -m comment --comment "weft: host to remote containers" -j MASQUERADE --random-fully`,
    'COMMIT',
    '',
  ].join('\n');
}

export class MasqError extends Error {
  override readonly name = 'MasqError';
}

/** Installs (or refreshes) the rules; idempotent, three processes at most. */
export async function ensureMasq(network: Cidr, subnet: Cidr): Promise<void> {
  // --noflush keeps everyone else's rules; declaring our chain resets just its contents.
  const restore = await execa('iptables-restore', ['-w', '--noflush'], { input: masqRules(network, subnet), reject: false });
  if (restore.exitCode !== 0) throw new MasqError(`iptables-restore failed: ${String(restore.stderr).trim()}`);
  const nat = ['-w', '-t', 'nat'];
  const jump = ['-m', 'comment', '--comment', 'weft masquerade', '-j', MASQ_CHAIN];
  const check = await execa('iptables', [...nat, '-C', 'POSTROUTING', ...jump], { reject: false });
  if (check.exitCode === 0) return;
  const insert = await execa('iptables', [...nat, '-I', 'POSTROUTING', '1', ...jump], { reject: false });
  if (insert.exitCode !== 0) throw new MasqError(`iptables -I POSTROUTING failed: ${String(insert.stderr).trim()}`);
}
