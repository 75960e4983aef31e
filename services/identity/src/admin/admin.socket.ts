/**
 * Listens on the admin unix socket so that it never exists with a mode looser than 0600: whoever
 * can connect is root-equivalent for Switchboard, so a chmod after `listen` would leave a window in
 * which any local user could connect.
 *
 * The socket file is created by bind(2) with mode `0777 & ~umask`, so the umask is set to 0177 for
 * the synchronous `listen` call alone (Node binds a unix socket synchronously inside `listen`; with
 * `exclusive` even in a cluster worker) and restored straight after. The mode is then checked, and a
 * socket with any other mode is closed and refused rather than fixed. The parent directory is
 * created 0700 when missing; an existing one is left alone (it may be /run or a shared directory).
 * A socket file left by a crashed run is replaced; one that a live process answers on is not.
 */
import { connect, type Server } from 'node:net';
import { lstatSync, mkdirSync, unlinkSync } from 'node:fs';
import { dirname } from 'node:path';

export const ADMIN_SOCKET_MODE = 0o600;

export async function listenPrivateSocket(srv: Server, path: string): Promise<void> {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const existing = lstatSync(path, { throwIfNoEntry: false });
  if (existing && !existing.isSocket())
    throw new Error(
      `admin socket path ${path} exists and is not a socket; refusing to replace it: remove it or set ADMIN_SOCKET to another path`,
    );
  if (existing) {
    if (await somebodyListens(path))
      throw new Error(
        `another process already serves the admin API on ${path}; stop it, or give this one its own DATA_DIR or ADMIN_SOCKET`,
      );
    // A socket left behind by a run that crashed (a clean stop unlinks it).
    unlinkSync(path);
  }

  const listening = new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    srv.once('error', onError);
    srv.once('listening', () => {
      srv.off('error', onError);
      resolve();
    });
  });
  const previous = process.umask(0o777 & ~ADMIN_SOCKET_MODE);
  try {
    srv.listen({ path, exclusive: true });
  } finally {
    process.umask(previous);
  }
  await listening;

  const st = lstatSync(path);
  const mode = st.mode & 0o777;
  if (!st.isSocket() || mode !== ADMIN_SOCKET_MODE) {
    await new Promise<void>((r) => srv.close(() => r()));
    throw new Error(
      `admin socket ${path} came out with mode 0${mode.toString(8)} instead of 0600 (is it on a filesystem that ignores the umask?); refusing to serve it: put ADMIN_SOCKET on a local filesystem such as /run`,
    );
  }
}

/** True when a process accepts connections on the unix socket at `path` (false: stale file). */
function somebodyListens(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = connect({ path });
    c.setTimeout(1000, () => {
      c.destroy();
      resolve(true); // something holds it but does not answer: do not steal it
    });
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', (err: NodeJS.ErrnoException) =>
      resolve(err.code !== 'ECONNREFUSED' && err.code !== 'ENOENT'),
    );
  });
}
