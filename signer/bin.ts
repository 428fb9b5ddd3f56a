#!/usr/bin/env node
import { main } from './main.js'

// The only file of imgdist-sign that touches `process`.
const status = await main(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  stderrIsTTY: process.stderr.isTTY === true,
  now: () => new Date(),
  debug: process.env.IMGDIST_DEBUG === '1'
})
process.exitCode = status
