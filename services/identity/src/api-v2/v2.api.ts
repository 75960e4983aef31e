/** Assembles the admin API v2: its routes, the router and the OpenAPI document (`/api/openapi.json`). */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ApiRoute } from './v2.route.js';
import type { V2Deps } from './v2.deps.js';
import { ApiV2Router } from './v2.router.js';
import { buildOpenApi, type DocumentedRoute } from './v2.openapi.js';
import { deviceRoutes } from './v2.devices.js';
import { keyRoutes } from './v2.keys.js';
import { policyRoutes } from './v2.policy.js';
import { dnsRoutes } from './v2.dns.js';
import { userRoutes } from './v2.users.js';
import { settingsRoutes } from './v2.settings.js';
import { oauthRoutes } from './v2.oauth.js';
import { V1_ROUTES } from '../admin/admin.routes.js';

export function v2Routes(d: V2Deps): ApiRoute[] {
  return [
    ...oauthRoutes(d),
    ...deviceRoutes(d),
    ...keyRoutes(d),
    ...policyRoutes(d),
    ...dnsRoutes(d),
    ...userRoutes(d),
    ...settingsRoutes(d),
  ];
}

export const OPENAPI_PATH = '/api/openapi.json';

export class ApiV2 {
  readonly routes: ApiRoute[];
  readonly router: ApiV2Router;
  private doc: string | undefined;

  constructor(private readonly d: V2Deps) {
    this.routes = v2Routes(d);
    this.router = new ApiV2Router({
      routes: this.routes,
      credentials: d.credentials,
      audit: d.audit,
      logger: d.logger,
      tailnetByRef: (ref) => {
        for (const t of d.nodeOwners.tailnets.values())
          if (String(t.id) === ref || t.name === ref || t.domain === ref) return t.id;
        return /^\d+$/.test(ref) && Number(ref) === 1 ? 1 : undefined;
      },
      extra: (req, res) => this.serveDocument(req, res),
    });
  }

  /** Every documented route: v1's and v2's. */
  documented(): DocumentedRoute[] {
    return [...V1_ROUTES, ...this.routes];
  }

  document(): Record<string, unknown> {
    return buildOpenApi(this.documented(), '1.0.0');
  }

  private serveDocument(req: IncomingMessage, res: ServerResponse): boolean {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== OPENAPI_PATH) return false;
    this.doc ??= JSON.stringify(this.document());
    res.writeHead(200, { 'content-type': 'application/json' }).end(this.doc);
    return true;
  }

  /** True when the request is the API's (`/api/v2/*`, `/api/openapi.json`); it is then answered. */
  handle(req: IncomingMessage, res: ServerResponse, opts: { local?: boolean } = {}): boolean {
    return this.router.handle(req, res, opts);
  }
}
