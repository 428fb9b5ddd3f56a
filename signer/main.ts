import { add } from './commands/add.js'
import { initRoot } from './commands/init-root.js'
import { keygen } from './commands/keygen.js'
import { publish } from './commands/publish.js'
import { revoke } from './commands/revoke.js'
import { sign } from './commands/sign.js'
import { signRoot } from './commands/sign-root.js'
import { verify } from './commands/verify.js'
import { errorLine, UsageError } from '../lib/errors.js'
import { exitStatusOf, type ExitStatus } from './errors.js'
import { out, type Io } from './io.js'
import { topHelp, VERSION } from './top-help.js'

type Command = (argv: string[], io: Io) => Promise<0>

const COMMANDS: Record<string, Command> = {
  keygen, 'init-root': initRoot, 'sign-root': signRoot, add, revoke, sign, verify, publish
}

/** Runs one imgdist-sign invocation; never throws: every failure becomes one stderr line and a status. */
export async function main (argv: string[], io: Io): Promise<ExitStatus> {
  try {
    return await dispatch(argv, io)
  } catch (err) {
    io.stderr.write(errorLine('imgdist-sign', err) + '\n')
    if (io.debug === true && err instanceof Error) io.stderr.write(`${err.stack ?? ''}\n`)
    return exitStatusOf(err)
  }
}

async function dispatch (argv: string[], io: Io): Promise<ExitStatus> {
  const [first, ...rest] = argv
  if (first === undefined) throw new UsageError(`no command given; commands: ${Object.keys(COMMANDS).join(', ')} (see imgdist-sign --help)`)
  if (first === '-h' || first === '--help') { out(io, topHelp.trimEnd()); return 0 }
  if (first === '-V' || first === '--version') { out(io, `imgdist-sign ${VERSION}`); return 0 }
  if (first === 'help') {
    const topic = rest[0]
    if (topic === undefined) { out(io, topHelp.trimEnd()); return 0 }
    const cmd = Object.hasOwn(COMMANDS, topic) ? COMMANDS[topic] : undefined
    if (cmd === undefined) throw new UsageError(`help: unknown command "${topic}"; commands: ${Object.keys(COMMANDS).join(', ')}`)
    return await cmd(['--help'], io)
  }
  const cmd = Object.hasOwn(COMMANDS, first) ? COMMANDS[first] : undefined
  if (cmd === undefined) {
    throw new UsageError(`unknown command "${first}"; commands: ${Object.keys(COMMANDS).join(', ')} (see imgdist-sign --help)`)
  }
  return await cmd(rest, io)
}
