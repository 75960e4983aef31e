#!/usr/bin/env node
/** Entry point of `bin/switchboard`: server modes, then the admin CLI. */
import 'reflect-metadata';
import { parseServeArgs, serveEnv } from './cli-args.js';
import { describeCliError, runAdminCli, USAGE } from './cli.js';
import { serve } from './serve.js';
import { runService, SERVICES, type ServiceName } from './service.js';

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === 'serve') {
    const args = parseServeArgs(rest);
    const srv = await serve({ inMemory: args.inMemory, env: serveEnv(args, process.env) });
    process.stdout.write(
      [
        `Switchboard is running.`,
        `  login server:  ${srv.url}`,
        `  admin socket:  ${srv.adminSocket}`,
        ``,
        `Create a user and a pre-auth key, then join a machine:`,
        `  bin/switchboard users create alice`,
        `  bin/switchboard preauthkeys create --user alice --reusable --expiration 24h`,
        `  tailscale up --login-server=${srv.url} --auth-key=<key>`,
        ``,
      ].join('\n'),
    );
    await waitForSignal();
    await srv.stop();
    return 0;
  }
  if (cmd === 'service') {
    const name = rest[0];
    if (!SERVICES.includes(name as ServiceName)) {
      process.stderr.write(`error: service must be one of ${SERVICES.join(', ')}\n`);
      return 2;
    }
    if (rest.length > 1) {
      process.stderr.write(
        `error: unexpected argument ${rest[1]} for "service ${name}"; services take their settings from the environment (see README, "Configuration reference")\n`,
      );
      return 2;
    }
    const svc = await runService(name as ServiceName);
    process.stderr.write(`${name} running${svc.port !== undefined ? ` on port ${svc.port}` : ''}\n`);
    await waitForSignal();
    await svc.stop();
    return 0;
  }
  if (cmd === undefined || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    process.stdout.write(USAGE);
    return 0;
  }
  return runAdminCli(argv, {
    out: (s) => process.stdout.write(s),
    err: (s) => process.stderr.write(s),
    env: process.env,
  });
}

function waitForSignal(): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => resolve();
    process.once('SIGINT', done);
    process.once('SIGTERM', done);
  });
}

/**
 * Exits once stdout and stderr have flushed: `process.exit` right after a large write to a pipe
 * dropped what the pipe had not taken yet (`nodes list -o json | cat` stopped at 65,536 bytes).
 */
function exitAfterFlush(code: number): void {
  process.exitCode = code;
  let pending = 2;
  const done = (): void => {
    if (--pending === 0) process.exit(code);
  };
  process.stdout.write('', done);
  process.stderr.write('', done);
}

main(process.argv.slice(2)).then(exitAfterFlush, (err: unknown) => {
  process.stderr.write(describeCliError(err));
  exitAfterFlush(1);
});
