// What `deploy up --dry-run --output json` says the lab should be, asked of a private moto
// server (deploy needs an AWS endpoint even for a dry run; a dry run changes nothing there).

import { ChildProcess, execFile, spawn } from 'child_process';
import * as fs from 'fs';
import * as net from 'net';
import * as os from 'os';
import * as path from 'path';

const SG_LAB_HOME = path.join(os.homedir(), '.cache', 'sg-lab');

/** The `deploy` binary: $DEPLOY_BIN, else the debug build in CARGO_TARGET_DIR or ~/.cache/sg-lab/target. */
export function deployBin(): string {
  const bin =
    process.env.DEPLOY_BIN ??
    path.join(process.env.CARGO_TARGET_DIR ?? path.join(SG_LAB_HOME, 'target'), 'debug', 'deploy');
  if (!fs.existsSync(bin)) {
    throw new Error(`no deploy binary at ${bin}: build it with \`cargo build -p deploy\`, or set DEPLOY_BIN`);
  }
  return bin;
}

/** PATH with the tools scripts/setup installs (moto_server, cfn-lint) first. */
export function toolPath(): string {
  return [path.join(SG_LAB_HOME, 'venv', 'bin'), process.env.PATH ?? ''].join(path.delimiter);
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** A moto server on a free port of 127.0.0.1, answering before this resolves. */
export class MotoServer {
  private constructor(
    readonly url: string,
    private readonly process: ChildProcess,
    private readonly output: () => string,
  ) {}

  static async start(timeoutMs = 60_000): Promise<MotoServer> {
    const port = await freePort();
    const child = spawn('moto_server', ['-H', '127.0.0.1', '-p', String(port)], {
      env: { ...process.env, PATH: toolPath(), MOTO_IAM_LOAD_MANAGED_POLICIES: 'true' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout?.on('data', (chunk) => (output += chunk));
    child.stderr?.on('data', (chunk) => (output += chunk));
    let exit: string | undefined;
    child.on('error', (err) => (exit = `could not start moto_server (${err.message}); run scripts/setup`));
    child.on('exit', (code, signal) => (exit ??= `moto_server exited (${signal ?? code}): ${output.slice(-2000)}`));

    const server = new MotoServer(`http://127.0.0.1:${port}`, child, () => output);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (exit) throw new Error(exit);
      try {
        const response = await fetch(`${server.url}/moto-api/data.json`, { signal: AbortSignal.timeout(2_000) });
        if (response.ok) return server;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) {
        server.stop();
        throw new Error(`moto_server did not answer on ${server.url} within ${timeoutMs / 1000} s: ${output.slice(-2000)}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }

  /** Ends the server this object started, and only it. */
  stop(): void {
    if (this.process.exitCode === null && this.process.signalCode === null) this.process.kill('SIGTERM');
  }

  get log(): string {
    return this.output();
  }
}

export interface DryRun {
  readonly account: string;
  readonly region: string;
  readonly desired: Record<string, any>;
}

/**
 * Whether `deploy up` takes `--fast-path`, as its `up --help` says; otherwise an error that
 * names the binary and what to do.
 */
export function requireFastPathFlag(): Promise<void> {
  return requireUpFlag('--fast-path', 'the fast path');
}

/** Whether `deploy up` takes `--policy` (lab | least-privilege), as its `up --help` says. */
export function requirePolicyFlag(): Promise<void> {
  return requireUpFlag('--policy', "the function role's policy choice");
}

function requireUpFlag(flag: string, what: string): Promise<void> {
  const bin = deployBin();
  const listed = new RegExp(`^\\s*${flag}\\b`, 'm');
  return new Promise((resolve, reject) => {
    execFile(bin, ['up', '--help'], { timeout: 30_000 }, (err, stdout, stderr) => {
      if (err) {
        reject(new Error(`${bin} up --help failed (${err.message}):\n${stderr}`));
      } else if (!listed.test(stdout)) {
        reject(
          new Error(
            `${bin} does not support \`up ${flag}\` (its \`up --help\` lists no such flag), so ${what} ` +
              `cannot be compared: rebuild deploy (\`cargo build -p deploy\`) from a tree that has ${what}, ` +
              'or set DEPLOY_BIN to such a build',
          ),
        );
      } else {
        resolve();
      }
    });
  });
}

/**
 * Runs `deploy --local --endpoint-url URL --output json up --dry-run --zip ZIP [--fast-path]
 * [--policy P]` and parses stdout. A `desired` without `fastPath` (a deploy from before the fast
 * path) reads as `fastPath: null`, which is what deploy prints without `--fast-path`.
 */
export function deployDryRun(
  endpoint: string,
  zip: string,
  options: { fastPath?: boolean; policy?: string } = {},
  timeoutMs = 60_000,
): Promise<DryRun> {
  const args = ['--local', '--endpoint-url', endpoint, '--output', 'json', 'up', '--dry-run', '--zip', zip];
  if (options.fastPath) args.push('--fast-path');
  if (options.policy !== undefined) args.push('--policy', options.policy);
  return new Promise((resolve, reject) => {
    execFile(deployBin(), args, { timeout: timeoutMs, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err) {
        reject(new Error(`deploy ${args.join(' ')} failed (${err.message}):\n${stderr}`));
        return;
      }
      try {
        const report = JSON.parse(stdout);
        if (!report.desired) throw new Error('the report has no `desired`');
        report.desired.fastPath ??= null;
        resolve({ account: report.account, region: report.region, desired: report.desired });
      } catch (parseError) {
        reject(new Error(`deploy printed no usable JSON (${(parseError as Error).message}):\n${stdout}\n${stderr}`));
      }
    });
  });
}
