/** `/api/v2/tailnet/{tailnet}/settings`: stored per tailnet; PATCH is partial, `null` means unchanged. */
import { z } from 'zod';
import { V2Repository } from './v2.repository.js';
import { route, type ApiRoute } from './v2.route.js';
import type { V2Deps } from './v2.deps.js';

export const TailnetSettingsSchema = z.object({
  devicesApprovalOn: z.boolean(),
  devicesAutoUpdatesOn: z.boolean(),
  devicesKeyDurationDays: z.number().int().min(1).max(180),
  usersApprovalOn: z.boolean(),
  usersRoleAllowedToJoinExternalTailnets: z.enum(['none', 'admin', 'member']),
  networkFlowLoggingOn: z.boolean(),
  regionalRoutingOn: z.boolean(),
  postureIdentityCollectionOn: z.boolean(),
  aclsExternallyManagedOn: z.boolean(),
  aclsExternalLink: z.string(),
  httpsEnabled: z.boolean(),
});
export type TailnetSettings = z.infer<typeof TailnetSettingsSchema>;

export const DEFAULT_SETTINGS: TailnetSettings = {
  devicesApprovalOn: false,
  devicesAutoUpdatesOn: false,
  devicesKeyDurationDays: 180,
  usersApprovalOn: false,
  usersRoleAllowedToJoinExternalTailnets: 'none',
  networkFlowLoggingOn: false,
  regionalRoutingOn: false,
  postureIdentityCollectionOn: false,
  aclsExternallyManagedOn: false,
  aclsExternalLink: '',
  httpsEnabled: false,
};

const PatchSchema = z
  .object(
    Object.fromEntries(
      Object.entries(TailnetSettingsSchema.shape).map(([k, v]) => [k, (v as z.ZodTypeAny).nullish()]),
    ) as {
      [K in keyof TailnetSettings]: z.ZodOptional<z.ZodNullable<(typeof TailnetSettingsSchema.shape)[K]>>;
    },
  )
  .strict();

const repo = new V2Repository();

export async function tailnetSettings(d: V2Deps, tailnetId: number): Promise<TailnetSettings> {
  const stored = await repo.settings(d.db, tailnetId);
  return { ...DEFAULT_SETTINGS, ...(stored ?? {}) };
}

export function settingsRoutes(d: V2Deps): ApiRoute[] {
  return [
    route({
      method: 'GET',
      path: '/api/v2/tailnet/{tailnet}/settings',
      operationId: 'getTailnetSettings',
      summary: 'Tailnet settings',
      tag: 'settings',
      access: { scope: 'feature_settings', write: false },
      params: z.object({ tailnet: z.string() }),
      response: TailnetSettingsSchema,
      examples: { response: DEFAULT_SETTINGS },
      handler: async (c) => ({ json: await tailnetSettings(d, c.tailnetId) }),
    }),
    route({
      method: 'PATCH',
      path: '/api/v2/tailnet/{tailnet}/settings',
      operationId: 'updateTailnetSettings',
      summary: 'Change some tailnet settings (fields left out or null are unchanged)',
      tag: 'settings',
      access: { scope: 'feature_settings', write: true },
      params: z.object({ tailnet: z.string() }),
      body: PatchSchema,
      examples: {
        body: { devicesKeyDurationDays: 30, aclsExternallyManagedOn: null, aclsExternalLink: null },
      },
      handler: async (c) => {
        const patch = Object.fromEntries(
          Object.entries(c.body).filter(([, v]) => v !== null && v !== undefined),
        );
        await d.db.transaction(async (q) => {
          const before = { ...DEFAULT_SETTINGS, ...((await repo.settings(q, c.tailnetId)) ?? {}) };
          const after = { ...before, ...patch };
          await repo.saveSettings(q, c.tailnetId, after);
          await c.auditIn(q, { target: `tailnet:${c.tailnetId}:settings`, before, after });
        });
        return {};
      },
    }),
  ];
}
