/**
 * Where downloaded models live, and how files get there without ever leaving a half-written one:
 * LATENTKV_CACHE_DIR, else $XDG_CACHE_HOME/latentkv, else ~/.cache/latentkv.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';

export function modelCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const explicit = env.LATENTKV_CACHE_DIR;
  if (explicit !== undefined && explicit !== '') return resolve(explicit);
  const xdg = env.XDG_CACHE_HOME;
  if (xdg !== undefined && xdg !== '') return resolve(xdg, 'latentkv');
  return join(homedir(), '.cache', 'latentkv');
}

/**
 * Writes `data` to a temporary name beside `filePath` and renames it into place, so readers (and
 * an interrupted run) see either no file or the whole file. Creates the folder if needed.
 */
export async function writeFileAtomic(filePath: string, data: Uint8Array | string): Promise<void> {
  await mkdir(dirname(filePath), { recursive: true });
  const temporary = `${filePath}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    await writeFile(temporary, data);
    await rename(temporary, filePath);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
}
