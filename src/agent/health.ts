// /healthz (the process is alive), /readyz (lease held, subnet.env written, kernel
// converged once) and /metrics (Prometheus). Off unless --healthz-port is given, as in
// flanneld, and bound to --healthz-ip only.
import { createServer, type Server } from 'node:http';

export interface Readiness {
  ready(): { ok: boolean; reason: string };
}

export interface MetricsSource {
  render(): Promise<string>;
  readonly contentType: string;
}

export async function startHealthServer(ip: string, port: number, readiness: Readiness, metrics?: MetricsSource): Promise<Server> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/metrics' && metrics) {
      metrics.render().then(
        (text) => res.writeHead(200, { 'content-type': metrics.contentType }).end(text),
        () => res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics unavailable\n'),
      );
    } else if (path === '/healthz') {
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
