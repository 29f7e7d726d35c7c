import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { modelCacheDir, writeFileAtomic } from '../../lib/model/model-cache.js';

describe('model cache folder', () => {
  it('prefers LATENTKV_CACHE_DIR, then XDG_CACHE_HOME, then ~/.cache', () => {
    expect(modelCacheDir({ LATENTKV_CACHE_DIR: '/x/models', XDG_CACHE_HOME: '/y' })).toBe('/x/models');
    expect(modelCacheDir({ XDG_CACHE_HOME: '/y' })).toBe('/y/latentkv');
    expect(modelCacheDir({ LATENTKV_CACHE_DIR: '', XDG_CACHE_HOME: '' })).toBe(
      join(homedir(), '.cache', 'latentkv'),
    );
    expect(modelCacheDir({ LATENTKV_CACHE_DIR: 'relative/dir' })).toBe(resolve('relative/dir'));
  });

  it('writes atomically and leaves no temporary file behind', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'latentkv-cache-'));
    try {
      const target = join(dir, 'nested', 'file.bin');
      await writeFileAtomic(target, Buffer.from('first'));
      await writeFileAtomic(target, 'second');
      expect(await readFile(target, 'utf8')).toBe('second');
      expect(await readdir(join(dir, 'nested'))).toEqual(['file.bin']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
