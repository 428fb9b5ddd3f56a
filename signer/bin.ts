#!/usr/bin/env node
import { dropOutputOnClosedPipe } from '../lib/closed-pipe.js'
import { main } from './main.js'

// The only file of imgdist-sign that touches `process`.
// No top-level await: the bundle is CommonJS (build/bundle.mjs).
dropOutputOnClosedPipe(process.stdout)
void main(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  stderrIsTTY: process.stderr.isTTY === true,
  now: () => new Date(),
  debug: process.env.IMGDIST_DEBUG === '1'
}).then((status) => { process.exitCode = status })
