// The function's deployment zip, as `deploy` checks it (deploy/src/artifact.rs): it must hold
// a Linux executable named `bootstrap` at its root, and the function's architecture is read
// from that executable's ELF header, so an x86_64 build is never declared arm64.

import * as fs from 'fs';
import * as zlib from 'zlib';

export type Architecture = 'x86_64' | 'arm64';

const BUILD_HINT = 'build it with scripts/package (cargo lambda build --release --output-format zip)';
/** Where scripts/package puts the x86_64 zip, relative to `cdk/`. */
const X86_64_ZIP = '../target/lambda/x86_64/bootstrap/bootstrap.zip';

/** A zip that cannot be deployed, with what is wrong and how to build a good one. */
export class ArtifactError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ArtifactError';
  }
}

/** Reads the architecture of `bootstrap` in the zip at `zipPath`. */
export function zipArchitecture(zipPath: string): Architecture {
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(zipPath);
  } catch (err) {
    throw new ArtifactError(
      `cannot read the function zip ${zipPath} (${(err as Error).message}): ${BUILD_HINT}, ` +
        `or pass an existing zip with -c functionZip=<path> (e.g. ${X86_64_ZIP})`,
    );
  }
  const header = readEntry(bytes, 'bootstrap', zipPath);
  try {
    return elfArchitecture(header);
  } catch (err) {
    throw new ArtifactError(`\`bootstrap\` in ${zipPath} ${(err as Error).message}: ${BUILD_HINT}`);
  }
}

/** The machine of an ELF header: e_machine is the little-endian u16 at byte 18. */
export function elfArchitecture(header: Buffer): Architecture {
  if (header.length < 20 || !header.subarray(0, 4).equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46]))) {
    throw new Error('is not a Linux executable (no ELF header)');
  }
  if (header[4] !== 2 || header[5] !== 1) {
    throw new Error('is not a 64-bit little-endian executable');
  }
  const machine = header.readUInt16LE(18);
  switch (machine) {
    case 0x3e:
      return 'x86_64';
    case 0xb7:
      return 'arm64';
    default:
      throw new Error(
        `is built for ELF machine 0x${machine.toString(16)}, which Lambda does not run (x86_64 or arm64 only)`,
      );
  }
}

const EOCD = 0x06054b50;
const CENTRAL = 0x02014b50;
const LOCAL = 0x04034b50;

/** The content of the entry `name` at the root of a zip (stored or deflated). */
function readEntry(zip: Buffer, name: string, shown: string): Buffer {
  const notZip = (why: string) => new ArtifactError(`${shown} is not a zip file (${why}): ${BUILD_HINT}`);
  // The end-of-central-directory record is the last 22 bytes, before a comment of up to 64 KiB.
  let eocd = -1;
  for (let at = zip.length - 22; at >= Math.max(0, zip.length - 22 - 0xffff); at--) {
    if (zip.readUInt32LE(at) === EOCD) {
      eocd = at;
      break;
    }
  }
  if (eocd < 0) throw notZip('no end of central directory');
  const entries = zip.readUInt16LE(eocd + 10);
  let at = zip.readUInt32LE(eocd + 16);
  if (at === 0xffffffff) throw notZip('ZIP64 archives are not supported');
  for (let i = 0; i < entries; i++) {
    if (at + 46 > zip.length || zip.readUInt32LE(at) !== CENTRAL) throw notZip('bad central directory');
    const method = zip.readUInt16LE(at + 10);
    const compressedSize = zip.readUInt32LE(at + 20);
    const nameLength = zip.readUInt16LE(at + 28);
    const extraLength = zip.readUInt16LE(at + 30);
    const commentLength = zip.readUInt16LE(at + 32);
    const localOffset = zip.readUInt32LE(at + 42);
    const entryName = zip.toString('utf8', at + 46, at + 46 + nameLength);
    at += 46 + nameLength + extraLength + commentLength;
    if (entryName !== name) continue;

    if (zip.readUInt32LE(localOffset) !== LOCAL) throw notZip(`bad local header for ${name}`);
    const start = localOffset + 30 + zip.readUInt16LE(localOffset + 26) + zip.readUInt16LE(localOffset + 28);
    const data = zip.subarray(start, start + compressedSize);
    if (method === 0) return data;
    if (method === 8) return zlib.inflateRawSync(data);
    throw notZip(`${name} uses compression method ${method}; only stored and deflated are read`);
  }
  throw new ArtifactError(`${shown} has no \`${name}\` at its root, so Lambda could not start it: ${BUILD_HINT}`);
}
