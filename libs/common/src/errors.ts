/**
 * Domain errors: every error Switchboard raises on purpose carries a stable code from a closed set,
 * a message naming what went wrong, and a hint saying what to do about it. Services translate codes
 * to HTTP/RPC statuses in one place each; domain code never builds transport errors itself.
 */
export class SwitchboardError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly hint?: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = new.target.name;
  }

  toJSON(): { code: string; message: string; hint?: string; details?: Record<string, unknown> } {
    return {
      code: this.code,
      message: this.message,
      ...(this.hint !== undefined ? { hint: this.hint } : {}),
      ...(this.details !== undefined ? { details: this.details } : {}),
    };
  }
}

/** Input that failed validation at a boundary (HTTP body, NATS message, protocol frame, CLI flag). */
export class ValidationError extends SwitchboardError {
  constructor(message: string, hint?: string, details?: Record<string, unknown>) {
    super('invalid_input', message, hint, details);
  }
}

/** The environment or a config file is invalid; raised once at boot naming every bad variable. */
export class ConfigError extends SwitchboardError {
  constructor(readonly problems: string[]) {
    super(
      'invalid_config',
      `invalid configuration:\n  - ${problems.join('\n  - ')}`,
      'fix the variables listed above and start again',
    );
  }
}

/** A peer service answered with an error; keeps the remote code so callers can switch on it. */
export class RemoteError extends SwitchboardError {}

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
