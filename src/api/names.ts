// Which names a Network may have: a DNS label that cannot collide with flannel's own keys
// under the prefix (`config`, `subnets...`).

const NETWORK_NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** Why a network name cannot be used, or undefined when it can. */
export function networkNameProblem(name: string): string | undefined {
  if (!NETWORK_NAME.test(name)) return `"${name}" is not a DNS label (lowercase letters, digits and '-', at most 63)`;
  if (name === 'config' || name.startsWith('subnets')) {
    return `"${name}" collides with flannel's own keys under the prefix`;
  }
  return undefined;
}
