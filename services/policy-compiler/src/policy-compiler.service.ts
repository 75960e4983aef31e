/**
 * policy-compiler domain logic. Until a policy is set, every tailnet runs the default allow-all
 * policy (version 0, text null), which netmap-fanout compiles into the allow-all packet filter.
 */
import type { Db } from '@switchboard/db';
import type { Logger } from '@switchboard/common';
import type { PolicyRecord } from '@switchboard/contracts';
import { PolicyRepository } from './policy-compiler.repository.js';

export const POLICY_SCHEMA = 'policy';

export interface PolicyDeps {
  db: Db;
  logger: Logger;
  kickOutbox: () => void;
}

export class PolicyCompilerService {
  private readonly repo = new PolicyRepository();
  constructor(private readonly deps: PolicyDeps) {}

  async get(tailnetId: number): Promise<PolicyRecord> {
    return this.repo.latest(this.deps.db, tailnetId);
  }

  async snapshot(): Promise<PolicyRecord[]> {
    return this.repo.allLatest(this.deps.db);
  }
}
