// Discovery: /version, /api, /apis, /apis/weft.io and /apis/weft.io/v1alpha1, so that kubectl
// finds the resources (api-resources, short names, the "weft" category). Only the plain
// documents: kubectl asks for aggregated discovery first and falls back to these.
import { weftVersion } from '../version.js';
import { RESOURCES } from './kinds.js';

export const GROUP = 'weft.io';
export const VERSION = 'v1alpha1';
export const GROUP_VERSION = `${GROUP}/${VERSION}`;

/**
 * The Kubernetes version weft's API reports. kubectl's dispatcher on these machines runs the
 * client whose minor matches it (kubectl.1.32 is installed); its conventions are v1.32's.
 */
export const KUBE_MINOR = '32';

export function versionInfo(): Record<string, string> {
  return {
    major: '1',
    minor: KUBE_MINOR,
    gitVersion: `v1.${KUBE_MINOR}.0+weft-${weftVersion()}`,
    gitCommit: '',
    gitTreeState: 'clean',
    buildDate: '1970-01-01T00:00:00Z',
    goVersion: `node${process.versions.node}`,
    compiler: 'weft',
    platform: `${process.platform}/${process.arch === 'x64' ? 'amd64' : process.arch}`,
  };
}

/** No core group: kubectl api-resources fails when /api lists v1 without serving it. */
export function coreVersions(): Record<string, unknown> {
  return { kind: 'APIVersions', versions: [], serverAddressByClientCIDRs: [] };
}

function group(): Record<string, unknown> {
  const v = { groupVersion: GROUP_VERSION, version: VERSION };
  return { name: GROUP, versions: [v], preferredVersion: v };
}

export function groupList(): Record<string, unknown> {
  return { kind: 'APIGroupList', apiVersion: 'v1', groups: [group()] };
}

export function apiGroup(): Record<string, unknown> {
  return { kind: 'APIGroup', apiVersion: 'v1', ...group() };
}

export function resourceList(): Record<string, unknown> {
  const resources: Record<string, unknown>[] = [];
  for (const r of RESOURCES) {
    resources.push({
      name: r.plural,
      singularName: r.singular,
      namespaced: false,
      kind: r.kind,
      verbs: r.verbs,
      ...(r.shortNames.length ? { shortNames: r.shortNames } : {}),
      // `kubectl get weft` lists everything; `kubectl get all` too, except the read-only nodes.
      categories: r.kind === 'Node' ? ['weft'] : ['weft', 'all'],
    });
  }
  return { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: GROUP_VERSION, resources };
}
