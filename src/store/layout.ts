// Where things live in etcd. Flannel's layout for what flanneld reads; weft's own metadata
// under <prefix>/_weft, which no flanneld ever looks at and which can never be mistaken for
// a lease key (nothing but lease keys may start with <prefix>/subnets).

import { networkNameProblem } from '../api/names.js';

export { networkNameProblem };

export const DEFAULT_PREFIX = '/coreos.com/network';
export const DEFAULT_NETWORK = 'default';

/** "/coreos.com//network/" -> "/coreos.com/network". */
export function normalizePrefix(prefix: string): string {
  const collapsed = ('/' + prefix).replace(/\/+/g, '/').replace(/\/$/, '');
  return collapsed === '' ? '' : collapsed;
}

export class Layout {
  readonly prefix: string;
  constructor(prefix: string = DEFAULT_PREFIX) {
    this.prefix = normalizePrefix(prefix);
  }

  /** The default network lives at the prefix itself; network N at <prefix>/N. */
  networkRoot(network: string): string {
    return network === DEFAULT_NETWORK ? this.prefix : `${this.prefix}/${network}`;
  }

  configKey(network: string): string {
    return `${this.networkRoot(network)}/config`;
  }

  /** With the trailing slash: only lease keys live under it. */
  subnetsPrefix(network: string): string {
    return `${this.networkRoot(network)}/subnets/`;
  }

  subnetKey(network: string, key: string): string {
    return this.subnetsPrefix(network) + key;
  }

  get metaRoot(): string {
    return `${this.prefix}/_weft/`;
  }

  networkMetaKey(network: string): string {
    return `${this.metaRoot}networks/${network}`;
  }

  subnetMetaPrefix(): string {
    return `${this.metaRoot}subnets/`;
  }

  subnetMetaKey(name: string): string {
    return this.subnetMetaPrefix() + name;
  }

  /** Node status records, one per agent: <prefix>/_weft/nodes/<network>/<node>. */
  nodeStatusPrefix(): string {
    return `${this.metaRoot}nodes/`;
  }

  nodeStatusKey(network: string, nodeName: string): string {
    return `${this.nodeStatusPrefix()}${network}/${nodeName}`;
  }

  /** The network and node a status key names; undefined parts when the key has another shape. */
  nodeOfStatusKey(key: string): { network: string | undefined; node: string } {
    const rest = key.slice(this.nodeStatusPrefix().length);
    const slash = rest.indexOf('/');
    if (slash <= 0 || rest.indexOf('/', slash + 1) !== -1) return { network: undefined, node: rest };
    return { network: rest.slice(0, slash), node: rest.slice(slash + 1) };
  }

  /** Network name from a config key, or undefined when the key is not one. */
  networkOfConfigKey(key: string): string | undefined {
    if (key === `${this.prefix}/config`) return DEFAULT_NETWORK;
    const rest = key.startsWith(this.prefix + '/') ? key.slice(this.prefix.length + 1) : undefined;
    const m = rest && /^([^/]+)\/config$/.exec(rest);
    return m && !networkNameProblem(m[1]!) && m[1] !== DEFAULT_NETWORK ? m[1] : undefined;
  }
}
