// The HTTPS server: authenticate, route by path and method, authorize, and turn every failure
// into a Status. Handlers live one per verb (read.ts, write.ts, delete.ts, watch.ts).
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { authorize, type Authenticator } from './auth.js';
import type { ServeContext } from './context.js';
import { handleDelete } from './delete.js';
import { aggregated, AGGREGATED_V2, apiGroup, coreVersions, GROUP, groupList, resourceList, VERSION, versionInfo, wantsAggregated } from './discovery.js';
import { resourceByPlural, type ServedResource } from './kinds.js';
import { openapiV2, openapiV3GroupVersion, openapiV3Index } from './openapi.js';
import { handleGet, handleList } from './read.js';
import { sendJson, sendStatus } from './respond.js';
import { ApiError, methodNotAllowed, toApiError } from './status.js';
import { handleWatch } from './watch.js';
import { handleCreate, handlePatch, handleUpdate } from './write.js';

export interface TlsMaterial {
  cert: string;
  key: string;
  /** PEM of the CAs whose client certificates authenticate users. */
  clientCA?: string;
}

const DOCS: Record<string, () => unknown> = {
  '/version': versionInfo,
  '/api': coreVersions,
  '/apis': groupList,
  [`/apis/${GROUP}`]: apiGroup,
  [`/apis/${GROUP}/${VERSION}`]: resourceList,
  '/openapi/v2': openapiV2,
  '/openapi/v3': openapiV3Index,
  [`/openapi/v3/apis/${GROUP}/${VERSION}`]: openapiV3GroupVersion,
};

/** The verb of a request on a resource path, as RBAC names them. */
function verbOf(method: string, name: string | undefined, watch: boolean): string {
  switch (method) {
    case 'GET':
    case 'HEAD':
      return name !== undefined ? 'get' : watch ? 'watch' : 'list';
    case 'POST':
      return 'create';
    case 'PUT':
      return 'update';
    case 'PATCH':
      return 'patch';
    case 'DELETE':
      return name !== undefined ? 'delete' : 'deletecollection';
    default:
      return method.toLowerCase();
  }
}

async function route(ctx: ServeContext, auth: Authenticator, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'https://weft.invalid');
  const path = url.pathname.replace(/\/+$/, '') || '/';
  if (path === '/healthz' || path === '/livez' || path === '/readyz') {
    res.writeHead(200, { 'Content-Type': 'text/plain' });
    res.end('ok');
    return;
  }
  const user = auth.authenticate(req);
  const doc = DOCS[path];
  if (doc) {
    if (req.method !== 'GET' && req.method !== 'HEAD') throw methodNotAllowed(`${req.method} is not allowed on ${path}`);
    if ((path === '/api' || path === '/apis') && wantsAggregated(req.headers.accept)) {
      sendJson(res, 200, aggregated(path === '/api'), { 'Content-Type': AGGREGATED_V2, Vary: 'Accept' });
      return;
    }
    sendJson(res, 200, doc());
    return;
  }
  const prefix = `/apis/${GROUP}/${VERSION}/`;
  const parts = path.startsWith(prefix) ? path.slice(prefix.length).split('/').map(decodeURIComponent) : [];
  const resource = parts[0] ? resourceByPlural(parts[0]) : undefined;
  if (!resource || parts.length > 2) {
    if (path.startsWith(`/apis/${GROUP}/${VERSION}/namespaces/`)) {
      throw new ApiError(404, 'NotFound', `weft's resources are cluster-scoped; there are no namespaces (${path})`);
    }
    throw new ApiError(404, 'NotFound', `the server could not find the requested resource (${req.method} ${path})`);
  }
  const name = parts[1];
  const watch = ['1', 'true'].includes(url.searchParams.get('watch') ?? '');
  const verb = verbOf(req.method ?? 'GET', name, watch);
  authorize(user, verb, resource.plural, name);
  ctx.log.debug('request', { user: user.name, verb, resource: resource.plural, ...(name !== undefined ? { name } : {}) });
  try {
    await dispatch(ctx, verb, resource, name, req, res, url, path);
  } catch (err) {
    // Errors in the words of the object they are about ("Subnet.weft.io \"gw-1\" is invalid").
    throw toApiError(err, { plural: resource.plural, kind: resource.kind, ...(name !== undefined ? { name } : {}) });
  }
}

async function dispatch(
  ctx: ServeContext,
  verb: string,
  resource: ServedResource,
  name: string | undefined,
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
  path: string,
): Promise<void> {
  switch (verb) {
    case 'get':
      return handleGet(ctx, resource, name!, req, res, url);
    case 'list':
      return handleList(ctx, resource, req, res, url);
    case 'watch':
      return handleWatch(ctx, resource, req, res, url);
    case 'create':
      if (name !== undefined) throw methodNotAllowed(`POST is only allowed on the collection /apis/${GROUP}/${VERSION}/${resource.plural}`);
      return handleCreate(ctx, resource, req, res, url);
    case 'update':
      if (name === undefined) throw methodNotAllowed('PUT needs an object name');
      return handleUpdate(ctx, resource, name, req, res, url);
    case 'patch':
      if (name === undefined) throw methodNotAllowed('PATCH needs an object name');
      return handlePatch(ctx, resource, name, req, res, url);
    case 'delete':
      return handleDelete(ctx, resource, name!, req, res, url);
    default:
      throw methodNotAllowed(`${req.method} is not supported on ${path}${verb === 'deletecollection' ? ' (delete objects one by one)' : ''}`);
  }
}

export function createApiServer(ctx: ServeContext, auth: Authenticator, tls: TlsMaterial): Server {
  const server = createServer(
    {
      cert: tls.cert,
      key: tls.key,
      ...(tls.clientCA ? { ca: tls.clientCA, requestCert: true, rejectUnauthorized: false } : {}),
    },
    (req, res) => {
      route(ctx, auth, req, res).catch((err: unknown) => {
        const api = toApiError(err, { plural: '', kind: '' });
        if (api.code >= 500) ctx.log.warn('request failed', { method: req.method, url: req.url, code: api.code, error: api.message });
        sendStatus(res, api);
      });
    },
  );
  return server;
}
