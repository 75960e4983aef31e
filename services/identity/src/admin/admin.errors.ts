/**
 * The one place where error codes from every service become HTTP statuses for the admin API.
 * Unknown codes are 500s and logged; a client always gets `{error:{code,message,hint?}}`.
 */
import { Catch, type ArgumentsHost, type ExceptionFilter, HttpException } from '@nestjs/common';
import { SwitchboardError, type Logger } from '@switchboard/common';
import type { Response } from 'express';

/** Errors the admin API raises itself (about the HTTP request, not the work it asks for). */
export type AdminErrorCode = 'too_large';

export class AdminError extends SwitchboardError {
  constructor(
    override readonly code: AdminErrorCode,
    message: string,
    hint?: string,
  ) {
    super(code, message, hint);
  }
}

export function statusForCode(code: string): number {
  switch (code) {
    case 'invalid_input':
    case 'invalid_policy':
      return 400;
    case 'unauthorized':
      return 401;
    case 'forbidden':
    case 'machine_mismatch':
    case 'tags_not_allowed':
    case 'login_refused':
      return 403;
    case 'node_not_found':
    case 'user_not_found':
    case 'preauth_key_not_found':
    case 'api_key_not_found':
    case 'login_not_found':
    case 'policy_version_not_found':
    case 'not_found':
      return 404;
    case 'user_exists':
    case 'user_has_nodes':
    case 'conflict':
      return 409;
    case 'precondition_failed':
      return 412;
    case 'method_not_allowed':
      return 405;
    case 'not_implemented':
      return 501;
    case 'unavailable':
    case 'timeout':
      return 503;
    case 'too_large':
      return 413;
    case 'address_space_exhausted':
      return 507;
    default:
      return 500;
  }
}

@Catch()
export class AdminExceptionFilter implements ExceptionFilter {
  constructor(private readonly log: Logger) {}

  catch(exception: unknown, host: ArgumentsHost): void {
    const res = host.switchToHttp().getResponse<Response>();
    if (exception instanceof SwitchboardError) {
      const status = statusForCode(exception.code);
      if (status >= 500) this.log.error('admin request failed', { err: exception });
      res.status(status).json({ error: exception.toJSON() });
      return;
    }
    if (exception instanceof HttpException) {
      const status = exception.getStatus();
      const code = status === 404 ? 'not_found' : status === 413 ? 'too_large' : 'invalid_input';
      res.status(status).json({ error: { code, message: exception.message } });
      return;
    }
    this.log.error('admin request failed with an unexpected error', { err: exception });
    res.status(500).json({ error: { code: 'internal', message: 'internal error; see the server log' } });
  }
}
