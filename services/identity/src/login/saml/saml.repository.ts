/**
 * The SAML provider's door to Postgres/PGlite (schema `identity`, migration 0016): outstanding
 * AuthnRequest IDs (single use, with an expiry) and the IDs of accepted assertions (replay cache).
 * Both consume/remember statements are single atomic statements, so two replicas racing on the
 * same request or assertion cannot both win.
 */
import type { Queryable } from '@switchboard/db';

export class SamlRepository {
  constructor(
    private readonly db: Queryable,
    private readonly providerId: string,
  ) {}

  async saveRequest(requestId: string, loginId: string, expiresAt: Date): Promise<void> {
    await this.db.query(
      `INSERT INTO identity.saml_requests (request_id, provider_id, login_id, expires_at) VALUES ($1, $2, $3, $4)`,
      [requestId, this.providerId, loginId, expiresAt.toISOString()],
    );
  }

  /** Deletes the request and returns its login, or null when unknown, used, expired or another provider's. */
  async consumeRequest(requestId: string, now: Date): Promise<string | null> {
    const { rows } = await this.db.query<{ login_id: string; expires_at: Date | string }>(
      `DELETE FROM identity.saml_requests WHERE request_id = $1 AND provider_id = $2
       RETURNING login_id, expires_at`,
      [requestId, this.providerId],
    );
    const r = rows[0];
    if (!r || new Date(r.expires_at).getTime() <= now.getTime()) return null;
    return r.login_id;
  }

  /** Records an accepted assertion ID; false when it was recorded before (a replay). */
  async rememberAssertion(assertionId: string, expiresAt: Date): Promise<boolean> {
    const { rowCount } = await this.db.query(
      `INSERT INTO identity.saml_assertions_seen (provider_id, assertion_id, expires_at) VALUES ($1, $2, $3)
       ON CONFLICT (provider_id, assertion_id) DO NOTHING`,
      [this.providerId, assertionId, expiresAt.toISOString()],
    );
    return rowCount === 1;
  }

  /** Drops expired requests and replay records (called now and then by the provider). */
  async purge(now: Date): Promise<void> {
    await this.db.query(`DELETE FROM identity.saml_requests WHERE expires_at < $1`, [now.toISOString()]);
    await this.db.query(`DELETE FROM identity.saml_assertions_seen WHERE expires_at < $1`, [
      now.toISOString(),
    ]);
  }
}
