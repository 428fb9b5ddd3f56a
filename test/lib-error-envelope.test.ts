import t from 'tap'
import { formatErrorEnvelope, MAX_MESSAGE_CHARS, parseErrorEnvelope } from '../lib/error-envelope.js'

/* How imgdist-sign publish, imgdist-agent and the agent's reporter read an HTTP error answer. */

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

t.test('an imgdist refusal {code, message}: both, and the one line operators read', async (t) => {
  const message = 'site "site-a" is not registered here; the index operator runs: imgdist-index sites add site-a PUBKEY --data-dir DIR'
  const e = parseErrorEnvelope(403, JSON.stringify({ code: 'SITE_UNKNOWN', message }))
  t.same(e, { status: 403, code: 'SITE_UNKNOWN', message })
  t.equal(formatErrorEnvelope(e), `HTTP 403 SITE_UNKNOWN: ${message}`)
  t.equal(formatErrorEnvelope(e, { withCode: false }), `HTTP 403: ${message}`, 'where the code leads the line already')
  t.same(parseErrorEnvelope(409, '{"error":{"code":"NOT_FAILED","message":"x has not failed"}}'), { status: 409, code: 'NOT_FAILED', message: 'x has not failed' },
    'an agent from before session 22 nests it under "error"')
  t.same(parseErrorEnvelope(409, '{"code":"ROLLBACK"}'), { status: 409, code: 'ROLLBACK', message: '{"code":"ROLLBACK"}' }, 'a code without a message: the body says the rest')
})

t.test('JSON without a code: no code, its message (or the body) as the message', async (t) => {
  const e = parseErrorEnvelope(500, '{"message":"out of disk"}')
  t.same(e, { status: 500, message: 'out of disk' })
  t.equal(formatErrorEnvelope(e), 'HTTP 500: out of disk')
  t.same(parseErrorEnvelope(404, '{"statusCode":404,"error":"Not Found","message":"Route GET:/v1/x not found"}'),
    { status: 404, message: 'Route GET:/v1/x not found' }, 'fastify\'s own shape (a server of another kind)')
  t.same(parseErrorEnvelope(400, '{"error":"bad request"}'), { status: 400, message: 'bad request' })
  t.same(parseErrorEnvelope(200, '{"accepted":true,"version":3}'), { status: 200, message: '{"accepted":true,"version":3}' })
  for (const code of ['site_unknown', 'NOT A CODE', 'X'.repeat(65), 42, null]) {
    t.equal(parseErrorEnvelope(403, JSON.stringify({ code, message: 'm' })).code, undefined, `${JSON.stringify(code)} is not taken for a code`)
  }
  t.same(parseErrorEnvelope(500, '[1,2]'), { status: 500, message: '[1,2]' }, 'JSON that is not an object is text')
})

t.test('a body that is not JSON is shown as text, on one line; an empty one as the status alone', async (t) => {
  const html = '<html>\r\n<head><title>502 Bad Gateway</title></head>\n\t<body>nginx</body>\n</html>\n'
  const e = parseErrorEnvelope(502, html)
  t.same(e, { status: 502, message: '<html> <head><title>502 Bad Gateway</title></head> <body>nginx</body> </html>' })
  t.equal(formatErrorEnvelope(e), 'HTTP 502: <html> <head><title>502 Bad Gateway</title></head> <body>nginx</body> </html>')
  t.equal(formatErrorEnvelope(parseErrorEnvelope(503, '')), 'HTTP 503')
  t.equal(formatErrorEnvelope(parseErrorEnvelope(503, '  \n ')), 'HTTP 503')
  t.equal(parseErrorEnvelope(400, JSON.stringify({ code: 'BAD_REQUEST', message: 'a\nb\u001b[31mred\u0007' })).message, 'a b [31mred',
    'no newline or terminal control character from a server reaches the terminal')
})

t.test('a huge body gives a bounded message, cut with "…", never half a character', async (t) => {
  const text = parseErrorEnvelope(500, 'x'.repeat(10_000_000))
  t.equal(text.message, 'x'.repeat(MAX_MESSAGE_CHARS) + '…')
  const json = parseErrorEnvelope(403, JSON.stringify({ code: 'SCHEMA_INVALID', message: 'y'.repeat(50_000) }))
  t.equal(json.code, 'SCHEMA_INVALID')
  t.equal(json.message, 'y'.repeat(MAX_MESSAGE_CHARS) + '…')
  const big = parseErrorEnvelope(403, JSON.stringify({ code: 'SCHEMA_INVALID', message: 'z'.repeat(200_000) }))
  t.equal(big.code, undefined, 'a body far beyond any envelope of ours is not parsed')
  t.ok(big.message.startsWith('{"code":"SCHEMA_INVALID"') && big.message.length === MAX_MESSAGE_CHARS + 1, 'and is shown as text, bounded')
  for (let shift = 0; shift < 2; shift++) {
    const m = parseErrorEnvelope(500, 'a'.repeat(shift) + '😀'.repeat(MAX_MESSAGE_CHARS)).message
    t.notMatch(m, LONE_SURROGATE, `no lone surrogate at the cut (shift ${shift})`)
    t.ok(m.endsWith('…') && m.length <= MAX_MESSAGE_CHARS + 1)
  }
  t.equal(parseErrorEnvelope(500, 'short 😀').message, 'short 😀')
})
