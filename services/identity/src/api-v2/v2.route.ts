/**
 * One route of the admin API v2, as data: its path, the zod schemas that validate its request (the
 * router parses with them; the OpenAPI document is generated from them), its access rule (decided in
 * roles/roles.ts) and its handler.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Queryable } from '@switchboard/db';
import type { ZodTypeAny, z } from 'zod';
import type { Principal, RouteAccess } from '../roles/roles.js';

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export interface RouteContext<P, Q, B> {
  principal: Principal;
  /** The tailnet the call is about: from `{tailnet}` or the credential's. */
  tailnetId: number;
  params: P;
  query: Q;
  body: B;
  /** The raw body text, for HuJSON (the policy file). */
  rawBody: string | undefined;
  headers: IncomingHttpHeaders;
  requestId: string;
  source: string;
  /** Records the audit entry inside the handler's transaction (the router then records none). */
  auditIn: (q: Queryable, note: AuditNote) => Promise<void>;
}

/** What the router audits for a write: the object touched and its state before and after. */
export interface AuditNote {
  target: string;
  before?: unknown;
  after?: unknown;
}

export interface RouteResult {
  status?: number;
  /** JSON body; undefined = empty body. */
  json?: unknown;
  /** A non-JSON body (HuJSON) with its content type. */
  text?: { body: string; contentType: string };
  headers?: Record<string, string>;
  audit?: AuditNote;
}

export interface ApiRoute<
  P extends ZodTypeAny = ZodTypeAny,
  Q extends ZodTypeAny = ZodTypeAny,
  B extends ZodTypeAny = ZodTypeAny,
> {
  method: HttpMethod;
  /** OpenAPI-style template: `/api/v2/tailnet/{tailnet}/devices`. */
  path: string;
  operationId: string;
  summary: string;
  tag: string;
  /** null: no credential (the OAuth token endpoint authenticates its own way). */
  access: RouteAccess | null;
  params?: P;
  query?: Q;
  /** Request body schema (JSON). `bodyKind: 'policy'` takes HuJSON text as well. */
  body?: B;
  bodyKind?: 'json' | 'policy' | 'form';
  /** Success response schema; undefined = no body. */
  response?: ZodTypeAny;
  successStatus?: number;
  /** Examples for the document; every one must validate against its schema (tested). */
  examples?: { body?: unknown; response?: unknown };
  handler: (ctx: RouteContext<z.infer<P>, z.infer<Q>, z.infer<B>>) => Promise<RouteResult>;
}

/** Keeps the schema types of one route definition (inference helper). */
export function route<P extends ZodTypeAny, Q extends ZodTypeAny, B extends ZodTypeAny>(
  r: ApiRoute<P, Q, B>,
): ApiRoute {
  return r as unknown as ApiRoute;
}
