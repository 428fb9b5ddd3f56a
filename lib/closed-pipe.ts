/**
 * A reader that goes away before the output ends (`imgdist-index sites list | head -1`, a pager
 * quit early): a write to the pipe fails with EPIPE, which Node raises as an unhandled 'error'
 * event, so the commands died with a stack trace where other Unix tools end quietly. The rest
 * of the output is dropped and the command runs to its end: a publish piped into `head` still
 * finishes its uploads. Other stream errors stay fatal.
 */
export function dropOutputOnClosedPipe (stream: NodeJS.WritableStream): void {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE' || err.code === 'ERR_STREAM_DESTROYED') return
    throw err
  })
}
