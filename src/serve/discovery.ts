// Discovery: /version, /api, /apis, /apis/weft.io and /apis/weft.io/v1alpha1, so that kubectl
// finds the resources (api-resources, short names, the "weft" category). /api and /apis also
// answer in aggregated form (apidiscovery.k8s.io/v2) when asked, as kubectl asks first: one
// request instead of one per group-version.
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

/** `kubectl get weft` lists everything; `kubectl get all` too, except the read-only nodes. */
function categoriesOf(kind: string): string[] {
  return kind === 'Node' ? ['weft'] : ['weft', 'all'];
}

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
      categories: categoriesOf(r.kind),
    });
  }
  return { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: GROUP_VERSION, resources };
}

export const AGGREGATED_V2 = 'application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList';

/** Whether the client takes apidiscovery.k8s.io/v2 (kubectl lists it first in Accept). */
export function wantsAggregated(accept: string | undefined): boolean {
  return accept !== undefined && accept.split(',').some((t) => /g=apidiscovery\.k8s\.io/.test(t) && /(^|;)\s*v=v2\s*(;|$)/.test(t) && /as=APIGroupDiscoveryList/.test(t));
}

/** The aggregated document of /apis (weft.io) or /api (nothing: no core group). */
export function aggregated(core: boolean): Record<string, unknown> {
  const resources = RESOURCES.map((r) => ({
    resource: r.plural,
    responseKind: { group: GROUP, version: VERSION, kind: r.kind },
    scope: 'Cluster',
    singularResource: r.singular,
    verbs: r.verbs,
    ...(r.shortNames.length ? { shortNames: r.shortNames } : {}),
    categories: categoriesOf(r.kind),
  }));
  return {
    kind: 'APIGroupDiscoveryList',
    apiVersion: 'apidiscovery.k8s.io/v2',
    metadata: {},
    items: core ? [] : [{ metadata: { name: GROUP }, versions: [{ version: VERSION, resources, freshness: 'Current' }] }],
  };
}
