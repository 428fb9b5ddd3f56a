import t from 'tap'
import { ConfigError, errorLine, ImgdistError } from '../lib/errors.js'

/**
 * The three programs print a failure as one line, `program: CODE: message`. imgdist-agent used to
 * print anything that was not an ImgdistError as `String(err)` (no code), imgdist-index as the
 * message alone; a multi-line message was cut (index) or printed whole (agent).
 */

t.test('an ImgdistError keeps its code; anything else is INTERNAL; always one line', async (t) => {
  t.equal(errorLine('imgdist-index', new ImgdistError('IO_ERROR', 'cannot read x')), 'imgdist-index: IO_ERROR: cannot read x')
  t.equal(errorLine('imgdist-agent', new ConfigError('bad config', ['a: wrong', 'b: missing'])), 'imgdist-agent: CONFIG_INVALID: bad config: a: wrong; b: missing')
  t.equal(errorLine('imgdist-agent', new TypeError('x is not a function')), 'imgdist-agent: INTERNAL: x is not a function')
  t.equal(errorLine('imgdist-sign', 'a string thrown'), 'imgdist-sign: INTERNAL: a string thrown')
  t.equal(errorLine('imgdist-sign', new Error('first\n  second\n')), 'imgdist-sign: INTERNAL: first second')
})
