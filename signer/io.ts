import type { Writable } from 'node:stream'

/**
 * What a command may touch of the outside world besides the files it is told about. bin.ts
 * builds it from `process`; nothing else in signer/ reads process state.
 */
export interface Io {
  stdout: Writable
  stderr: Writable
  /** Progress bars only make sense on a terminal; logs and pipes get the final line only. */
  stderrIsTTY: boolean
  /** Wall clock for issued/expires; tests pin it through `--now` where a command offers it. */
  now: () => Date
  /** IMGDIST_DEBUG=1: print stack traces too, for bug reports. */
  debug?: boolean
}

export function out (io: Io, line: string): void { io.stdout.write(line + '\n') }
export function note (io: Io, line: string): void { io.stderr.write(line + '\n') }
