import cliProgress from 'cli-progress'
import type { Io } from './io.js'

/**
 * Hashing progress (bytes, rate, ETA) on stderr, only when stderr is a terminal: a log file or
 * a pipe gets no carriage-return noise, only the final summary line of the command.
 */

export interface Progress { update: (bytes: number) => void, stop: () => void }

export function formatBytes (n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let v = n
  let u = 0
  while (v >= 1024 && u < units.length - 1) { v /= 1024; u++ }
  return `${u === 0 ? v : v.toFixed(1)} ${units[u] as string}`
}

export function hashingProgress (io: Io, label: string, total: number): Progress {
  if (!io.stderrIsTTY) return { update: () => {}, stop: () => {} }
  const started = Date.now()
  const bar = new cliProgress.SingleBar({
    stream: io.stderr,
    format: `${label} [{bar}] {percentage}% {done}/{size} {rate} ETA {eta_formatted}`,
    barsize: 30,
    hideCursor: null,
    clearOnComplete: true,
    etaBuffer: 50,
    fps: 8
  })
  const rate = (bytes: number): string => {
    const secs = (Date.now() - started) / 1000
    return secs > 0 ? `${formatBytes(bytes / secs)}/s` : '-'
  }
  bar.start(total, 0, { done: formatBytes(0), size: formatBytes(total), rate: '-' })
  return {
    update: (bytes) => bar.update(bytes, { done: formatBytes(bytes), rate: rate(bytes) }),
    stop: () => bar.stop()
  }
}
