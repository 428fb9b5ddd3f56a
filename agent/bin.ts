#!/usr/bin/env node
import { pino } from 'pino'
import { dropOutputOnClosedPipe } from '../lib/closed-pipe.js'
import { ConfigError, errorLine, UsageError } from '../lib/errors.js'
import { AGENT_VERSION, ImgdistAgent } from './agent.js'
import { CLI_SYNOPSIS, CLI_USAGE, runCli } from './cli.js'
import { readConfigFile } from './config.js'

/** The only file that touches process: argv, env, signals, exit codes. */

async function run (argv: string[]): Promise<void> {
  let configPath: string | undefined
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string
    if (a === '--config') configPath = argv[++i]
    else if (a.startsWith('--config=')) configPath = a.slice(9)
    else throw new UsageError(`unknown argument ${a}`)
  }
  if (configPath === undefined) throw new UsageError('run needs --config FILE')
  const cfg = await readConfigFile(configPath)
  const log = pino({ level: cfg.logLevel, base: { site: cfg.site }, redact: ['*.siteKey', '*.password', '*.secret'] })
  const agent = new ImgdistAgent(cfg, log, { env: process.env })
  let stopping = false
  const stop = (signal: string): void => {
    if (stopping) return
    stopping = true
    log.info({ signal }, 'shutting down')
    // Bound the drain so systemd never has to escalate to SIGKILL.
    setTimeout(() => { log.error('shutdown took too long; exiting'); process.exit(1) }, 10_000).unref()
    agent.close().then(() => { process.exit(0) }, (err) => { log.error({ err: String(err) }, 'error while stopping'); process.exit(1) })
  }
  process.on('SIGTERM', () => { stop('SIGTERM') })
  process.on('SIGINT', () => { stop('SIGINT') })
  process.on('SIGHUP', () => {
    // a file that does not validate, or a target entry its target refuses: nothing of it applies
    readConfigFile(configPath as string).then((next) => { agent.reload(next) }).catch((err: unknown) => { agent.reloadRefused(err) })
  })
  try {
    await agent.start()
  } catch (err) {
    await agent.close().catch(() => {})
    throw err
  }
}

async function main (): Promise<number> {
  const argv = process.argv.slice(2)
  // the daemon's logs keep Node's behaviour; the operator commands' output may go to `| head`
  if (argv[0] !== 'run') dropOutputOnClosedPipe(process.stdout)
  // `imgdist-agent run --help` as well as `imgdist-agent --help`: one page describes every command
  if (argv[0] === undefined || argv[0] === 'help' || argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(CLI_USAGE)
    return argv[0] === undefined ? 2 : 0
  }
  if (argv[0] === '--version' || argv[0] === '-V' || argv[0] === 'version') { process.stdout.write(`imgdist-agent ${AGENT_VERSION}\n`); return 0 }
  if (argv[0] === 'run') { await run(argv.slice(1)); return -1 }
  return await runCli(argv, { out: (s) => process.stdout.write(s), env: process.env })
}

main().then((code) => { if (code >= 0) process.exitCode = code }, (err: unknown) => {
  // a config that does not validate is bad usage of `run`, as --help's EXIT STATUS says
  const code = err instanceof UsageError || err instanceof ConfigError ? 2 : 1
  process.stderr.write(`${errorLine('imgdist-agent', err)}\n`)
  if (err instanceof UsageError) process.stderr.write(CLI_SYNOPSIS)
  process.exit(code)
})
