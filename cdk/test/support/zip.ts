// Function zips for the tests: a `bootstrap` whose ELF header says x86_64 or arm64, written as a
// real zip (stored or deflated) that both the CDK app and `deploy` read.

import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as zlib from 'zlib';
import type { Architecture } from '../../lib/artifact';

const MACHINE: Record<Architecture, number> = { x86_64: 0x3e, arm64: 0xb7 };

/** The first 64 bytes of a 64-bit little-endian Linux executable for `architecture`. */
export function elfHeader(architecture: Architecture | number): Buffer {
  const header = Buffer.alloc(64);
  Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0]).copy(header);
  header.writeUInt16LE(2, 16); // ET_EXEC
  header.writeUInt16LE(typeof architecture === 'number' ? architecture : MACHINE[architecture], 18);
  return header;
}

export interface ZipEntry {
  readonly name: string;
  readonly data: Buffer;
  readonly deflate?: boolean;
}

/** A zip file holding `entries`, with fixed timestamps so that its bytes never change. */
export function zipBytes(entries: ZipEntry[]): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const entry of entries) {
    const name = Buffer.from(entry.name, 'utf8');
    const stored = entry.deflate ? zlib.deflateRawSync(entry.data) : entry.data;
    const fields = (header: Buffer, at: number) => {
      header.writeUInt16LE(20, at); // version needed
      header.writeUInt16LE(0, at + 2); // flags
      header.writeUInt16LE(entry.deflate ? 8 : 0, at + 4);
      header.writeUInt16LE(0, at + 6); // time 00:00
      header.writeUInt16LE(0x21, at + 8); // date 1980-01-01
      header.writeUInt32LE(crc32(entry.data), at + 10);
      header.writeUInt32LE(stored.length, at + 14);
      header.writeUInt32LE(entry.data.length, at + 18);
      header.writeUInt16LE(name.length, at + 22);
    };
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    fields(local, 4);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(0x031e, 4); // made by: Unix
    fields(central, 6);
    central.writeUInt32LE((0o100755 << 16) >>> 0, 38);
    central.writeUInt32LE(offset, 42);
    locals.push(local, name, stored);
    centrals.push(central, name);
    offset += local.length + name.length + stored.length;
  }
  const directory = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(directory.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, directory, end]);
}

/** Writes a function zip for `architecture` into a new temporary directory; returns its path. */
export function functionZip(architecture: Architecture, options: { deflate?: boolean } = {}): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-lab-cdk-'));
  const file = path.join(dir, `bootstrap-${architecture}.zip`);
  fs.writeFileSync(
    file,
    zipBytes([{ name: 'bootstrap', data: Buffer.concat([elfHeader(architecture), Buffer.alloc(256)]), ...options }]),
  );
  return file;
}

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(data: Buffer): number {
  let crc = 0xffffffff;
  for (const byte of data) crc = CRC_TABLE[(crc ^ byte) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}
