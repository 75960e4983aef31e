/** What the v2 route handlers use: the database, the bus, identity's service and views, the audit log. */
import type { Bus } from '@switchboard/bus';
import type { Logger } from '@switchboard/common';
import type { Db } from '@switchboard/db';
import type { AuditLog } from '../audit/audit.service.js';
import type { IdentityService } from '../identity.service.js';
import type { NodeOwnersView } from '../node-owners.view.js';
import type { Credentials } from './v2.credentials.js';

export interface V2Deps {
  db: Db;
  bus: Bus;
  logger: Logger;
  identity: IdentityService;
  nodeOwners: NodeOwnersView;
  credentials: Credentials;
  audit: AuditLog;
  /** Wakes the outbox relay and waits (bounded) until what was committed is in the log. */
  published: () => Promise<void>;
}
