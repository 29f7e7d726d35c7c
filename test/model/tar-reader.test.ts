import { execFileSync } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readTarFiles, TarFormatError } from '../../lib/model/tar-reader.js';

/** Yields a buffer in small uneven chunks, so headers and data straddle chunk boundaries. */
async function* chunked(bytes: Uint8Array, size = 777): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
}

function hasTar(): boolean {
  try {
    execFileSync('tar', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

describe('tar reader', () => {
  let dir = '';
  const longName = `${'deeply/'.repeat(20)}nested-file-with-a-name-longer-than-one-hundred-bytes.bin`;
  const contents = new Map<string, Buffer>([
    ['package/src/a.txt', Buffer.from('hello tar\n')],
    ['package/src/empty.txt', Buffer.alloc(0)],
    ['package/src/block.bin', Buffer.alloc(512 * 3, 7)],
    [`package/${longName}`, Buffer.from(Array.from({ length: 1500 }, (_, i) => i % 251))],
  ]);

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'latentkv-tar-'));
    for (const [name, data] of contents) {
      await mkdir(join(dir, 'src', name, '..'), { recursive: true });
      await writeFile(join(dir, 'src', name), data);
    }
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  for (const format of ['ustar', 'pax', 'gnu'] as const) {
    it(`reads the requested files of a ${format} archive made by the system tar`, async (ctx) => {
      ctx.skip(!hasTar(), 'no tar binary on this machine');
      const archive = join(dir, `${format}.tar`);
      // The long name needs ustar's prefix field, a pax 'x' record, or a GNU 'L' entry.
      const names = [...contents.keys()];
      execFileSync('tar', [`--format=${format}`, '-cf', archive, '-C', join(dir, 'src'), ...names]);
      const bytes = await readFile(archive);
      const files = await readTarFiles(
        chunked(bytes),
        (name) => name !== 'package/src/a.txt' || format !== 'gnu',
      );
      for (const name of names) {
        if (name === 'package/src/a.txt' && format === 'gnu') expect(files.has(name)).toBe(false);
        else expect(files.get(name)).toEqual(contents.get(name));
      }
    });
  }

  it('reads through gunzip as ensureStories15M does', async (ctx) => {
    ctx.skip(!hasTar(), 'no tar binary on this machine');
    const archive = join(dir, 'archive.tgz');
    execFileSync('tar', [
      '-czf',
      archive,
      '-C',
      join(dir, 'src'),
      'package/src/a.txt',
      'package/src/block.bin',
    ]);
    const gunzip = createGunzip();
    pipeline(createReadStream(archive), gunzip, () => {});
    const files = await readTarFiles(gunzip, () => true);
    expect(files.get('package/src/a.txt')?.toString()).toBe('hello tar\n');
    expect(files.get('package/src/block.bin')).toEqual(contents.get('package/src/block.bin'));
  });

  it('rejects truncated archives and garbage', async (ctx) => {
    ctx.skip(!hasTar(), 'no tar binary on this machine');
    const archive = join(dir, 'cut.tar');
    execFileSync('tar', ['-cf', archive, '-C', join(dir, 'src'), 'package/src/block.bin']);
    const bytes = await readFile(archive);
    await expect(readTarFiles(chunked(bytes.subarray(0, 1000)), () => true)).rejects.toThrow(
      /truncated archive.*block\.bin/,
    );
    await expect(readTarFiles(chunked(bytes.subarray(0, 300)), () => true)).rejects.toThrow(TarFormatError);
    const garbage = Buffer.alloc(1024, 0x41);
    await expect(readTarFiles(chunked(garbage), () => true)).rejects.toThrow(/checksum|octal/);
  });
});
