/**
 * Admin REST API (/api/v1): users, pre-auth keys, nodes, API keys. Transport only: bodies are read
 * with size and depth limits (admin.body.ts) and validated with zod here, route prefixes must be
 * canonical; the work is done by identity or key-registry over the bus.
 */
import {
  Body,
  Controller,
  Delete,
  Get,
  Headers,
  HttpCode,
  Inject,
  Param,
  Post,
  Put,
  Query,
  UseInterceptors,
} from '@nestjs/common';
import type { Bus } from '@switchboard/bus';
import { ValidationError } from '@switchboard/common';
import { callRpc, identity, keyRegistry, policy, validateMessage } from '@switchboard/contracts';
import { routePrefixProblem } from '@switchboard/protocol';
import { z } from 'zod';
import type { IdentityService } from '../identity.service.js';
import { IdentityError } from '../identity.errors.js';
import { JsonBodyInterceptor } from './admin.body.js';
import type { AuditLog } from '../audit/audit.service.js';
import {
  AuditQuery,
  CreateApiKeyBody,
  CreateKeyBody,
  ExpireApiKeyBody,
  ExpireKeyBody,
  PolicyBody,
  RoleBody,
  RollbackBody,
  RegisterPendingBody,
  RoutesBody,
  TagsBody,
} from './admin.routes.js';

export const ADMIN_BUS = Symbol('ADMIN_BUS');
/** Set by the admin server (never taken from the client): who is calling, for audit fields. */
export const ACTOR_HEADER = 'x-switchboard-actor';
export const ADMIN_IDENTITY = Symbol('ADMIN_IDENTITY');
export const ADMIN_AUDIT = Symbol('ADMIN_AUDIT');

const durationRe = /^(\d+)(s|m|h|d)$/;
export function expiryFrom(expiration: string | undefined, fallbackMs: number): string {
  if (expiration === undefined) return new Date(Date.now() + fallbackMs).toISOString();
  const m = durationRe.exec(expiration);
  if (m) {
    const unit = { s: 1e3, m: 6e4, h: 3.6e6, d: 8.64e7 }[m[2] as 's' | 'm' | 'h' | 'd'];
    return new Date(Date.now() + Number(m[1]) * unit).toISOString();
  }
  const t = Date.parse(expiration);
  if (Number.isNaN(t))
    throw new ValidationError(`expiration "${expiration}" is neither a duration (90d, 12h) nor a time`);
  return new Date(t).toISOString();
}

const idParam = z.coerce.number().int().positive();

@Controller('api/v1')
@UseInterceptors(JsonBodyInterceptor)
export class AdminController {
  constructor(
    @Inject(ADMIN_BUS) private readonly bus: Bus,
    @Inject(ADMIN_IDENTITY) private readonly ids: IdentityService,
    @Inject(ADMIN_AUDIT) private readonly audit: AuditLog,
  ) {}

  private async resolveUser(ref: string | number): Promise<number> {
    const u =
      typeof ref === 'number' || /^\d+$/.test(ref)
        ? await this.ids.getUser({ id: Number(ref) })
        : await this.ids.getUser({ name: ref });
    if (!u)
      throw new IdentityError(
        'user_not_found',
        `no user "${ref}"`,
        'create it with "switchboard users create NAME"',
      );
    return u.id;
  }

  @Get('users')
  async listUsers(): Promise<unknown> {
    return { users: await this.ids.listUsers() };
  }

  @Post('users')
  async createUser(@Body() body: unknown): Promise<unknown> {
    const req = validateMessage(identity.CreateUser.request, body, 'POST /api/v1/users');
    return { user: await this.ids.createUser(req) };
  }

  @Post('users/:id/disable')
  @HttpCode(200)
  async disableUser(@Param('id') id: string): Promise<unknown> {
    return { user: await this.ids.setUserDisabled(await this.resolveUser(id), true) };
  }

  @Post('users/:id/enable')
  @HttpCode(200)
  async enableUser(@Param('id') id: string): Promise<unknown> {
    return { user: await this.ids.setUserDisabled(await this.resolveUser(id), false) };
  }

  /** headscale's manual approval: attaches a pending browser login's device to a user. */
  @Post('nodes/register')
  @HttpCode(200)
  async registerPending(@Body() body: unknown): Promise<unknown> {
    const req = validateMessage(RegisterPendingBody, body, 'POST /api/v1/nodes/register');
    const userId = await this.resolveUser(req.user);
    const r = await callRpc(
      this.bus,
      keyRegistry.CompleteLogin,
      { loginId: req.key, userId },
      { timeoutMs: 15_000 },
    );
    if (r.kind === 'ok') return { node: r.node };
    throw new IdentityError(
      r.kind === 'refused' ? 'login_refused' : 'login_not_found',
      r.kind === 'refused' ? r.message : `no pending login ${req.key} (${r.kind})`,
      'run "tailscale up" on the device again and use the id at the end of the URL it prints',
    );
  }

  @Delete('users/:id')
  async deleteUser(@Param('id') id: string): Promise<unknown> {
    const uid = await this.resolveUser(id);
    return { user: await this.ids.deleteUser(uid) };
  }

  @Get('preauthkeys')
  async listKeys(@Query('user') user?: string): Promise<unknown> {
    const userId = user !== undefined ? await this.resolveUser(user) : undefined;
    return callRpc(this.bus, keyRegistry.ListPreAuthKeys, userId !== undefined ? { userId } : {});
  }

  @Post('preauthkeys')
  async createKey(@Body() body: unknown): Promise<unknown> {
    const req = validateMessage(CreateKeyBody, body, 'POST /api/v1/preauthkeys');
    const userId = await this.resolveUser(req.user);
    return callRpc(this.bus, keyRegistry.CreatePreAuthKey, {
      userId,
      reusable: req.reusable,
      ephemeral: req.ephemeral,
      tags: req.tags,
      expiresAt: expiryFrom(req.expiration, 3_600_000),
    });
  }

  @Post('preauthkeys/expire')
  @HttpCode(200)
  async expireKey(@Body() body: unknown): Promise<unknown> {
    const req = validateMessage(ExpireKeyBody, body, 'POST /api/v1/preauthkeys/expire');
    if (req.key === undefined && req.id === undefined)
      throw new ValidationError('give "key" (its prefix or the whole key) or "id"');
    return callRpc(this.bus, keyRegistry.ExpirePreAuthKey, { id: req.id, prefix: req.key });
  }

  @Get('nodes')
  async listNodes(@Query('user') user?: string): Promise<unknown> {
    const userId = user !== undefined ? await this.resolveUser(user) : undefined;
    return callRpc(this.bus, keyRegistry.ListNodes, userId !== undefined ? { userId } : {});
  }

  @Delete('nodes/:id')
  async deleteNode(@Param('id') id: string): Promise<unknown> {
    return callRpc(this.bus, keyRegistry.DeleteNode, { nodeId: validateMessage(idParam, id, 'node id') });
  }

  @Post('nodes/:id/expire')
  @HttpCode(200)
  async expireNode(@Param('id') id: string): Promise<unknown> {
    return callRpc(this.bus, keyRegistry.ExpireNode, { nodeId: validateMessage(idParam, id, 'node id') });
  }

  @Post('nodes/:id/approve')
  @HttpCode(200)
  async approveNode(@Param('id') id: string): Promise<unknown> {
    return callRpc(this.bus, keyRegistry.ApproveNode, { nodeId: validateMessage(idParam, id, 'node id') });
  }

  @Post('nodes/:id/tag')
  @HttpCode(200)
  async tagNode(@Param('id') id: string, @Body() body: unknown): Promise<unknown> {
    const req = validateMessage(TagsBody, body, 'POST /api/v1/nodes/:id/tag');
    return callRpc(this.bus, keyRegistry.TagNode, {
      nodeId: validateMessage(idParam, id, 'node id'),
      tags: req.tags,
    });
  }

  @Post('nodes/:id/routes')
  @HttpCode(200)
  async approveRoutes(@Param('id') id: string, @Body() body: unknown): Promise<unknown> {
    const nodeId = validateMessage(idParam, id, 'node id');
    const req = validateMessage(RoutesBody, body, 'POST /api/v1/nodes/:id/routes');
    for (const route of req.routes) {
      const problem = routePrefixProblem(route);
      if (problem !== undefined)
        throw new ValidationError(
          `POST /api/v1/nodes/${nodeId}/routes: ${problem}`,
          'give each route as a masked prefix, as the node announces it (see "switchboard nodes list")',
        );
    }
    return callRpc(this.bus, keyRegistry.SetApprovedRoutes, { nodeId, routes: req.routes });
  }

  @Get('policy')
  async getPolicy(@Query('version') version?: string): Promise<unknown> {
    if (version !== undefined)
      return callRpc(this.bus, policy.GetPolicyVersion, {
        version: validateMessage(idParam, version, 'policy version'),
      });
    return callRpc(this.bus, policy.GetPolicy, {});
  }

  @Put('policy')
  async setPolicy(@Body() body: unknown, @Headers(ACTOR_HEADER) actor?: string): Promise<unknown> {
    const req = validateMessage(PolicyBody, body, 'PUT /api/v1/policy');
    return callRpc(
      this.bus,
      policy.SetPolicy,
      { text: req.policy, author: actor ?? 'admin' },
      { timeoutMs: 60_000 },
    );
  }

  @Post('policy/check')
  @HttpCode(200)
  async checkPolicy(@Body() body: unknown): Promise<unknown> {
    const req = validateMessage(PolicyBody, body, 'POST /api/v1/policy/check');
    return callRpc(this.bus, policy.CheckPolicy, { text: req.policy }, { timeoutMs: 60_000 });
  }

  @Get('policy/history')
  async policyHistory(@Query('limit') limit?: string): Promise<unknown> {
    return callRpc(
      this.bus,
      policy.PolicyHistory,
      limit ? { limit: validateMessage(idParam, limit, 'limit') } : {},
    );
  }

  @Post('policy/rollback')
  @HttpCode(200)
  async rollbackPolicy(@Body() body: unknown, @Headers(ACTOR_HEADER) actor?: string): Promise<unknown> {
    const req = validateMessage(RollbackBody, body, 'POST /api/v1/policy/rollback');
    return callRpc(
      this.bus,
      policy.RollbackPolicy,
      { version: req.version, author: actor ?? 'admin' },
      { timeoutMs: 60_000 },
    );
  }

  @Get('apikeys')
  async listApiKeys(): Promise<unknown> {
    return { keys: await this.ids.listApiKeys() };
  }

  @Post('apikeys')
  async createApiKey(@Body() body: unknown): Promise<unknown> {
    const req = validateMessage(CreateApiKeyBody, body ?? {}, 'POST /api/v1/apikeys');
    const owner = req.user !== undefined ? await this.resolveUser(req.user) : null;
    return this.ids.createApiKey(expiryFrom(req.expiration, 90 * 86_400_000), owner);
  }

  @Post('apikeys/expire')
  @HttpCode(200)
  async expireApiKey(@Body() body: unknown): Promise<unknown> {
    const req = validateMessage(ExpireApiKeyBody, body, 'POST /api/v1/apikeys/expire');
    return { record: await this.ids.expireApiKey(req.prefix) };
  }

  @Post('users/:id/role')
  @HttpCode(200)
  async setUserRole(@Param('id') id: string, @Body() body: unknown): Promise<unknown> {
    const req = validateMessage(RoleBody, body, 'POST /api/v1/users/:id/role');
    return { user: await this.ids.setUserRole(await this.resolveUser(id), req.role) };
  }

  @Get('audit')
  async listAudit(@Query() query: unknown): Promise<unknown> {
    return { entries: await this.audit.list(validateMessage(AuditQuery, query, 'GET /api/v1/audit')) };
  }

  @Get('audit/verify')
  async verifyAudit(): Promise<unknown> {
    return this.audit.verify();
  }
}
