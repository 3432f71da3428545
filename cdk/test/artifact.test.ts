// The architecture comes from the ELF header of `bootstrap` in the zip, as in `deploy`.

import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { ArtifactError, elfArchitecture, zipArchitecture } from '../lib/artifact';
import { elfHeader, functionZip, zipBytes } from './support/zip';

function writeZip(bytes: Buffer): string {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'sg-lab-cdk-')), 'f.zip');
  fs.writeFileSync(file, bytes);
  return file;
}

describe('zipArchitecture', () => {
  test.each([
    ['x86_64', false],
    ['arm64', false],
    ['x86_64', true],
    ['arm64', true],
  ] as const)('reads %s from bootstrap (deflated: %s)', (architecture, deflate) => {
    expect(zipArchitecture(functionZip(architecture, { deflate }))).toBe(architecture);
  });

  test('finds bootstrap among other entries', () => {
    const zip = writeZip(
      zipBytes([
        { name: 'README', data: Buffer.from('hello') },
        { name: 'bootstrap', data: elfHeader('x86_64'), deflate: true },
      ]),
    );
    expect(zipArchitecture(zip)).toBe('x86_64');
  });

  test.each([
    ['not a zip', Buffer.from('not a zip at all, not even close'), 'is not a zip file'],
    ['no bootstrap', zipBytes([{ name: 'main', data: elfHeader('arm64') }]), 'has no `bootstrap` at its root'],
    ['bootstrap in a folder', zipBytes([{ name: 'bin/bootstrap', data: elfHeader('arm64') }]), 'has no `bootstrap`'],
    ['a script', zipBytes([{ name: 'bootstrap', data: Buffer.from('#!/bin/sh\necho hi\n') }]), 'no ELF header'],
    ['32-bit ARM', zipBytes([{ name: 'bootstrap', data: elfHeader(0x28) }]), 'ELF machine 0x28'],
  ])('rejects %s, naming how to build a good zip', (_, bytes, expected) => {
    const zip = writeZip(bytes);
    expect(() => zipArchitecture(zip)).toThrow(ArtifactError);
    expect(() => zipArchitecture(zip)).toThrow(expected);
    expect(() => zipArchitecture(zip)).toThrow('scripts/package');
  });

  test('a missing zip names the path and both ways out: build one, or pass an existing one', () => {
    expect(() => zipArchitecture('/nonexistent/bootstrap.zip')).toThrow(
      /cannot read the function zip \/nonexistent\/bootstrap.zip .*cargo lambda build --release --output-format zip/,
    );
    expect(() => zipArchitecture('/nonexistent/bootstrap.zip')).toThrow(
      /or pass an existing zip with -c functionZip=<path> \(e\.g\. \.\.\/target\/lambda\/x86_64\/bootstrap\/bootstrap\.zip\)/,
    );
  });
});

describe('elfArchitecture', () => {
  test('reads e_machine as a little-endian u16 at byte 18', () => {
    expect(elfArchitecture(elfHeader(0x3e))).toBe('x86_64');
    expect(elfArchitecture(elfHeader(0xb7))).toBe('arm64');
    // 0xb7 in the high byte is another machine entirely.
    expect(() => elfArchitecture(elfHeader(0xb700))).toThrow('ELF machine 0xb700');
  });

  test('refuses a 32-bit or big-endian header', () => {
    const header = elfHeader('arm64');
    header[4] = 1;
    expect(() => elfArchitecture(header)).toThrow('64-bit little-endian');
    const bigEndian = elfHeader('arm64');
    bigEndian[5] = 2;
    expect(() => elfArchitecture(bigEndian)).toThrow('64-bit little-endian');
  });
});
