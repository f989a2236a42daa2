// /healthz (the process is alive) and /readyz (lease held, subnet.env written, kernel
// converged once). Off unless --healthz-port is given, as in flanneld.
import { createServer, type Server } from 'node:http';

export interface Readiness {
  ready(): { ok: boolean; reason: string };
}

export async function startHealthServer(ip: string, port: number, readiness: Readiness): Promise<Server> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    } else if (path === '/readyz') {
      const r = readiness.ready();
      res.writeHead(r.ok ? 200 : 503, { 'content-type': 'text/plain' }).end(`${r.reason}\n`);
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, ip, () => resolve());
  });
  return server;
}
