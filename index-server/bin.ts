#!/usr/bin/env node
import { dropOutputOnClosedPipe } from '../lib/closed-pipe.js'
import { ConfigError, errorLine, UsageError } from '../lib/errors.js'
import { cmdImport, cmdInit, cmdSites, helpFor, loadServeConfig, type CliIo } from './cli.js'
import { startIndexDaemon } from './daemon.js'

const VERSION = '0.1.0'

function fail (err: unknown): number {
  const usage = err instanceof UsageError || err instanceof ConfigError
  process.stderr.write(`${errorLine('imgdist-index', err)}\n`)
  if (err instanceof UsageError) process.stderr.write('Run "imgdist-index help" for usage.\n')
  return usage ? 2 : 1
}

async function serve (args: string[]): Promise<number | undefined> {
  const config = await loadServeConfig(args)
  if (config === undefined) { process.stdout.write(helpFor('serve')); return 0 }
  const daemon = await startIndexDaemon(config)
  let stopping = false
  const stop = (signal: string): void => {
    if (stopping) return
    stopping = true
    daemon.app.log.info({ signal }, 'draining')
    daemon.close().then(() => process.exit(0), (err) => { daemon.app.log.error({ err }, 'close failed'); process.exit(1) })
  }
  process.on('SIGTERM', () => stop('SIGTERM'))
  process.on('SIGINT', () => stop('SIGINT'))
  process.on('SIGHUP', () => { daemon.app.log.info('SIGHUP: rescanning images and torrents'); daemon.app.imgdist.resync() })
  return undefined // keep running
}

async function main (argv: string[]): Promise<number | undefined> {
  const [cmd, ...rest] = argv
  // the server's logs keep Node's behaviour; a command's output may go to `| head`
  if (cmd !== 'serve') dropOutputOnClosedPipe(process.stdout)
  const io: CliIo = { out: (line) => process.stdout.write(line.endsWith('\n') ? line : line + '\n'), now: () => new Date() }
  switch (cmd) {
    case 'init': return await cmdInit(rest, io)
    case 'serve': return await serve(rest)
    case 'import': return await cmdImport(rest, io)
    case 'sites': return await cmdSites(rest, io)
    case 'help': case '--help': case '-h': io.out(helpFor(rest[0])); return 0
    case '--version': case 'version': io.out(VERSION); return 0
    case undefined: process.stderr.write(helpFor(undefined)); return 2
    default: throw new UsageError(`unknown command "${cmd}"`)
  }
}

main(process.argv.slice(2)).then((code) => {
  if (code !== undefined) process.exitCode = code
}, (err) => { process.exitCode = fail(err) })
