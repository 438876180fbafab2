import { spawn } from 'node:child_process';
import { lstat, unlink } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';

/** How long socat gets to create the pseudo-terminal's link. */
const LINK_TIMEOUT_MS = 5000;

/**
 * A pseudo-terminal whose slave is reachable at `path` (a symbolic link made by socat), so
 * a program opens it like /dev/ttyACM0. socat runs `- pty,raw,echo=0,link=PATH`: what the
 * program writes comes out of socat's stdout into `onData`; what `write` gets goes to the
 * program. socat survives the program closing and reopening the slave.
 *
 * `onExit(code)` is called if socat ends after the link exists and before `close()`.
 */
export async function openPty(path, onData, onExit) {
  await removeStaleLink(path);
  const child = spawn('socat', ['-', `pty,raw,echo=0,link=${path}`], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  let spawnError = null;
  let running = false; // the link exists and close() has not been called
  child.once('error', (e) => {
    spawnError = e; // socat missing
  });
  const exited = new Promise((resolve) => {
    child.once('close', (code) => {
      resolve();
      if (running) onExit(code);
    });
  });
  child.stdout.on('data', onData);
  child.stdin.on('error', () => {}); // EPIPE if socat is gone: onExit reports that

  const deadline = Date.now() + LINK_TIMEOUT_MS;
  while (!(await exists(path))) {
    let failure = null;
    if (spawnError) failure = `cannot run socat: ${spawnError.message}`;
    else if (child.exitCode !== null) failure = `socat exited before creating ${path}`;
    else if (Date.now() > deadline) failure = `socat did not create ${path}`;
    if (failure) {
      child.kill();
      throw new Error(failure);
    }
    await sleep(5);
  }
  running = true;

  return {
    path,
    write(bytes) {
      child.stdin.write(bytes);
    },
    async close() {
      running = false;
      child.stdin.end();
      child.kill('SIGTERM');
      await Promise.race([exited, sleep(1000)]);
    },
  };
}

/** A link left by an earlier run would make socat fail; anything else at `path` is kept. */
async function removeStaleLink(path) {
  try {
    if ((await lstat(path)).isSymbolicLink()) await unlink(path);
  } catch (e) {
    if (e.code !== 'ENOENT') throw e;
  }
}

async function exists(path) {
  try {
    await lstat(path);
    return true;
  } catch (e) {
    if (e.code === 'ENOENT') return false;
    throw e;
  }
}
