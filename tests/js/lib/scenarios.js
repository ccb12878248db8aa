'use strict'
// Client scenarios against the services of SERVICES.md. Each scenario gets a
// fresh connection and throws on the first mismatch.

const crypto = require('crypto')
const b4a = require('b4a')
const c = require('compact-encoding')
const transport = require('./transport')
const rpc = require('./rpc')
const { Chan, parseMessage, muxWithTap } = require('./chan')
const { RpcClient } = require('./rpc-client')

const P = {
  echo: 'plex-test/echo',
  reject: 'plex-test/reject',
  close: 'plex-test/close',
  batch: 'plex-test/batch',
  count: 'plex-test/count',
  sink: 'plex-test/sink'
}

const hex = (b) => b4a.toString(b, 'hex')
const text = (b) => JSON.stringify(b4a.toString(b))

function expectBytes (got, want, what) {
  if (!b4a.equals(b4a.from(got), b4a.from(want))) {
    throw new Error(`${what}: got ${hex(b4a.from(got))} want ${hex(b4a.from(want))}`)
  }
}

function expect (cond, what) {
  if (!cond) throw new Error(what)
}

// Asserts that the listener's OPEN for plex-test/batch id `id` arrived inside
// a BATCH that also carries b1, b2, b3 on that channel.
function expectBatchedOpen (received, id, what) {
  for (const msg of received) {
    const items = parseMessage(msg)
    if (!(items.length > 1 && items[0].batch)) continue
    const open = items.find((it) => it.channel === 0 && it.type === 1)
    if (open === undefined) continue
    // OPEN body: uint senderLocalId · string protocol · buffer id · handshake
    const st = { start: 0, end: open.body.byteLength, buffer: open.body }
    const remoteId = c.uint.decode(st)
    const protocol = c.string.decode(st)
    const openId = c.buffer.decode(st)
    if (protocol !== P.batch || openId === null || b4a.toString(openId) !== id) continue
    const data = items.filter((it) => it.channel === remoteId).map((it) => b4a.toString(it.body))
    const want = ['b1', 'b2', 'b3']
    if (want.every((m, i) => data[i] === m)) return
    throw new Error(`${what}: BATCH with the OPEN reply (remote id ${remoteId}) carries ${JSON.stringify(data)}, want b1,b2,b3`)
  }
  throw new Error(`${what}: no BATCH carrying the plex-test/batch OPEN reply for id ${id} among ${received.length} received messages`)
}

async function echoRoundTrip (ch, payloads, label) {
  for (const p of payloads) ch.send(p)
  await ch.waitMessages(payloads.length)
  expect(ch.messages.length === payloads.length, `${label}: ${ch.messages.length} messages, want ${payloads.length}`)
  payloads.forEach((p, i) => expectBytes(ch.messages[i], p, `${label}: message ${i}`))
}

const scenarios = {
  async echo ({ mux, log }) {
    const ch = new Chan(mux, { protocol: P.echo, id: 'e1', handshake: 'cli-hs' }).open()
    await ch.waitOpen()
    expectBytes(ch.handshake, 'srv:cli-hs', 'listener handshake')
    // Ten messages, the sixth of them zero-length, then a last one. A Rust
    // server cannot send an empty message (its Protomux refuses them, as
    // protomux may hold a zero-length DATA back indefinitely), so the echo
    // of the empty one may be missing; every other echo must come, in order.
    const payloads = Array.from({ length: 10 }, (_, i) => (i === 5 ? '' : `hi#${i}`))
    for (const p of [...payloads, 'last']) ch.send(p)
    await ch.waitFor(() => ch.messages.some((m) => b4a.toString(m) === 'last'), "the echo of 'last'")
    const got = ch.messages.map((m) => b4a.toString(m))
    const full = [...payloads, 'last']
    const withoutEmpty = full.filter((p) => p !== '')
    const same = (a, b) => a.length === b.length && a.every((m, i) => m === b[i])
    expect(same(got, full) || same(got, withoutEmpty), `echoes ${JSON.stringify(got)}, want ${JSON.stringify(full)} (the empty one may be missing)`)
    if (!same(got, full)) log('echo: the server did not echo the zero-length message')
    expect(!ch.closed, 'channel closed unexpectedly')
  },

  async 'echo-many-channels' ({ mux }) {
    const chans = Array.from({ length: 16 }, (_, i) =>
      new Chan(mux, { protocol: P.echo, id: `many-${i}`, handshake: `h${i}` }).open())
    await Promise.all(chans.map((ch) => ch.waitOpen()))
    chans.forEach((ch, i) => expectBytes(ch.handshake, `srv:h${i}`, `channel ${i} handshake`))
    const rounds = 10
    for (let r = 0; r < rounds; r++) {
      chans.forEach((ch, i) => ch.send(`c${i}-r${r}`))
    }
    await Promise.all(chans.map((ch) => ch.waitMessages(rounds)))
    chans.forEach((ch, i) => {
      expect(ch.messages.length === rounds, `channel ${i}: ${ch.messages.length} messages`)
      for (let r = 0; r < rounds; r++) expectBytes(ch.messages[r], `c${i}-r${r}`, `channel ${i} message ${r}`)
    })
  },

  async reject ({ mux }) {
    const ch = new Chan(mux, { protocol: P.reject, id: 'r1' }).open()
    await ch.waitClose()
    expect(ch.events.length === 1 && ch.events[0].kind === 'close' && ch.events[0].remote === true,
      `want only a remote close, got ${ch.describe()}`)
  },

  async close ({ mux }) {
    const ch = new Chan(mux, { protocol: P.close, id: 'c1' }).open()
    await ch.waitOpen()
    ch.send('bye')
    await ch.waitClose()
    const kinds = ch.events.map((e) => e.kind).join(',')
    expect(kinds === 'open,msg,close', `events ${ch.describe()}`)
    expectBytes(ch.messages[0], 'bye', 'echo before close')
    expect(ch.closedRemote === true, 'close not remote')
  },

  async batch ({ mux, received }) {
    // (1) OPEN and two messages in one cork: the client's BATCH.
    const ch = new Chan(mux, { protocol: P.batch, id: 'b1' })
    mux.cork()
    ch.open()
    ch.send('x1')
    ch.send('x2')
    mux.uncork()
    await ch.waitMessages(5)
    expect(ch.events[0].kind === 'open', `first event ${ch.describe()}`)
    expectBytes(ch.handshake, '', 'listener handshake')
    expect(ch.messages.length === 5, `got ${ch.messages.length} messages`)
    ;['b1', 'b2', 'b3', 'x1', 'x2'].forEach((w, i) => expectBytes(ch.messages[i], w, `message ${i}`))
    expectBatchedOpen(received, 'b1', 'reply to a BATCH')
    // (2) A plain OPEN: the service itself must BATCH its OPEN with b1..b3.
    const plain = new Chan(mux, { protocol: P.batch, id: 'b2' }).open()
    await plain.waitMessages(3)
    ;['b1', 'b2', 'b3'].forEach((w, i) => expectBytes(plain.messages[i], w, `plain OPEN: message ${i}`))
    expectBatchedOpen(received, 'b2', 'reply to a plain OPEN')
    plain.send('p1')
    await plain.waitMessages(4)
    expectBytes(plain.messages[3], 'p1', 'plain OPEN: echo')
  },

  async 'order-1000' ({ mux }) {
    const ch = new Chan(mux, { protocol: P.echo, id: 'o1' }).open()
    await ch.waitOpen()
    const payloads = Array.from({ length: 1000 }, (_, i) =>
      b4a.concat([b4a.from(String(i).padStart(4, '0')), crypto.randomBytes(1 + (i % 97))]))
    await echoRoundTrip(ch, payloads, 'order-1000')
  },

  async count ({ mux }) {
    const n = 1000
    const ch = new Chan(mux, { protocol: P.count, id: 'n1', handshake: String(n) }).open()
    await ch.waitClose()
    expect(ch.events[0].kind === 'open', `first event ${ch.describe()}`)
    expect(ch.messages.length === n, `got ${ch.messages.length} messages, want ${n}`)
    for (let i = 0; i < n; i++) expectBytes(ch.messages[i], `m${i}`, `message ${i}`)
    expect(ch.events[ch.events.length - 1].kind === 'close' && ch.closedRemote === true, 'last event is not a remote close')
  },

  async big ({ mux }) {
    const ch = new Chan(mux, { protocol: P.sink, id: 's1' }).open()
    await ch.waitOpen()
    const blob = crypto.randomBytes(1024 * 1024)
    ch.send(blob)
    await ch.waitMessages(1, 30000)
    const want = `${blob.byteLength} ${crypto.createHash('sha256').update(blob).digest('hex')}`
    expect(b4a.toString(ch.messages[0]) === want, `sink replied ${text(ch.messages[0])}, want ${JSON.stringify(want)}`)
    ch.send(b4a.alloc(0))
    await ch.waitMessages(2)
    const empty = '0 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'
    expect(b4a.toString(ch.messages[1]) === empty, `sink replied ${text(ch.messages[1])} to an empty message`)
  },

  async 'early-data' ({ mux }) {
    const ch = new Chan(mux, { protocol: P.echo, id: 'early', handshake: 'eh' }).open()
    const payloads = ['early-0', 'early-1', 'early-2']
    for (const p of payloads) ch.send(p)
    expect(!ch.opened, 'channel opened before the early writes were queued')
    await ch.waitMessages(3)
    expect(ch.events[0].kind === 'open', `first event ${ch.describe()}`)
    expectBytes(ch.handshake, 'srv:eh', 'listener handshake')
    payloads.forEach((p, i) => expectBytes(ch.messages[i], p, `message ${i}`))
  },

  async reopen ({ mux, log }) {
    const first = new Chan(mux, { protocol: P.echo, id: 'again', handshake: 'one' }).open()
    await first.waitOpen()
    await echoRoundTrip(first, ['first'], 'first channel')
    first.close()
    const second = new Chan(mux, { protocol: P.echo, id: 'again', handshake: 'two' }).open()
    await second.waitFor(() => second.opened || second.closed, 'second open')
    if (!second.opened) throw new Error(`second OPEN of the same (protocol, id) was rejected: ${second.describe()}`)
    expectBytes(second.handshake, 'srv:two', 'second handshake')
    await echoRoundTrip(second, ['second'], 'second channel')
    log('reopen: the second channel on the same (protocol, id) opened and echoed')
  },

  // neonplex's smoke exchange: bare base protocol, id 9a01 with payload
  // plex-smoke-tcp over tcp, id 9a02 with plex-smoke-ws over ws.
  async smoke ({ mux, opts, url }) {
    const ws = url.startsWith('ws:')
    const payload = ws ? 'plex-smoke-ws' : 'plex-smoke-tcp'
    const ch = new Chan(mux, { protocol: opts.base, id: b4a.from(ws ? '9a02' : '9a01', 'hex') }).open()
    await ch.waitOpen()
    expectBytes(ch.handshake, '', 'listener handshake')
    ch.send(payload)
    await ch.waitMessages(1)
    expectBytes(ch.messages[0], payload, 'echo')
  },

  async rpc ({ mux, opts }) {
    const client = new RpcClient(mux, { base: opts.base, id: opts.id })
    await client.ready()
    await rpcChecks(client)
  },

  // SCAN bounds in neonplex's encoder layout (interleaved), which a neonplex
  // server cannot decode (research doc §8): our servers accept both layouts.
  async 'rpc-scan-interleaved' ({ mux, opts }) {
    const client = new RpcClient(mux, { base: opts.base, id: opts.id })
    await client.ready()
    for (const k of ['m/1', 'm/2', 'm/3', 'n/1']) {
      await call(client, rpc.METHOD.PUT, rpc.encPutBody(k, 'v' + k), rpc.encOk(), `PUT ${k}`)
    }
    await scan(client, { range: { gte: 'm/2', lt: 'n/1' } }, [['m/2', 'vm/2'], ['m/3', 'vm/3']], 'SCAN range gte m/2 lt n/1 (interleaved)', 'interleaved')
    await scan(client, { prefix: 'm/', range: { gt: 'm/1', lt: 'm/3' } }, [['m/2', 'vm/2']], 'SCAN prefix + range (interleaved)', 'interleaved')
    await scan(client, { range: { lte: 'm/1' }, reverse: true }, [['m/1', 'vm/1']], 'SCAN range lte m/1 reverse (interleaved)', 'interleaved')
  }
}

async function call (client, mid, body, want, what, opts) {
  const res = await client.call(mid, body, opts)
  expect(res.frames.length === 1, `${what}: ${res.frames.length} frames`)
  const f = res.frames[0]
  expect(f.t === rpc.FT_RES && f.mid === mid && f.more === false, `${what}: frame t=${f.t} mid=${f.mid} more=${f.more}`)
  expectBytes(f.payload, want, what)
}

async function appendKey (client, body, n, what) {
  const res = await client.call(rpc.METHOD.APPEND, body)
  expect(res.frames.length === 1, `${what}: ${res.frames.length} frames`)
  const env = rpc.decEnvelope(res.frames[0].payload)
  expect(env.ok && env.value === null && env.key !== null, `${what}: not ok(key only)`)
  const key = b4a.toString(env.key)
  const match = /^log\/(0*)(\d+)$/.exec(key)
  expect(match !== null && Number(match[2]) === n, `${what}: key ${key}`)
  return key
}

async function rpcChecks (client) {
  const M = rpc.METHOD
  await call(client, M.PUT, rpc.encPutBody('k', 'v'), rpc.encOk(), 'PUT k=v')
  await call(client, M.GET, rpc.encKeyBody('k'), rpc.encOk('v'), 'GET k')
  await call(client, M.DEL, rpc.encKeyBody('k'), rpc.encOk(), 'DEL k')
  await call(client, M.GET, rpc.encKeyBody('k'), rpc.encOk(), 'GET k after DEL (miss)')
  await call(client, M.GET, rpc.encKeyBody('never'), rpc.encOk(), 'GET miss')
  // APPEND answers the new key only: `log/` and the append count,
  // zero-padded to the server's width (neonplex's example: 8 digits; the
  // Rust store ports: 20, so keys sort as numbers up to u64).
  const first = await appendKey(client, rpc.encAppendBody('a1', 't'), 1, 'APPEND a1 caps t')
  const second = await appendKey(client, rpc.encAppendBody('a2'), 2, 'APPEND a2')

  for (const k of ['m/1', 'm/2', 'm/3', 'n/1']) {
    await call(client, M.PUT, rpc.encPutBody(k, 'v' + k), rpc.encOk(), `PUT ${k}`)
  }
  await scan(client, { prefix: 'log/' }, [[first, 'a1'], [second, 'a2']], 'SCAN prefix log/')
  await scan(client, { prefix: 'm/', reverse: true }, [['m/3', 'vm/3'], ['m/2', 'vm/2'], ['m/1', 'vm/1']], 'SCAN prefix m/ reverse')
  await scan(client, { prefix: 'none/' }, [], 'SCAN empty prefix match')
  const range = { gte: 'm/2', lt: 'n/1' }
  await scan(client, { range }, [['m/2', 'vm/2'], ['m/3', 'vm/3']], 'SCAN range gte m/2 lt n/1 (flags-first)')
  await scan(client, { range: { gt: 'm/1', lte: 'n/1' }, reverse: true }, [['n/1', 'vn/1'], ['m/3', 'vm/3'], ['m/2', 'vm/2']], 'SCAN range gt m/1 lte n/1 reverse')
  await scan(client, { prefix: 'm/', range: { gt: 'm/1', lt: 'm/3' } }, [['m/2', 'vm/2']], 'SCAN prefix + range (flags-first)')

  await call(client, M.GET, rpc.encKeyBody('example/fail'), rpc.encErr('BadArg', 'forced error'), 'GET example/fail')
  await call(client, M.GET, rpc.encKeyBody('m/1', 'deny'), rpc.encErr('CapabilityDenied', 'denied'), 'GET caps deny')
  await call(client, M.PUT, rpc.encPutBody('m/1', 'x', 'deny'), rpc.encErr('CapabilityDenied', 'denied'), 'PUT caps deny')
  await call(client, M.GET, rpc.encKeyBody('m/1', 'ok-token'), rpc.encOk('vm/1'), 'GET caps other token')
  await call(client, 9, b4a.alloc(0), rpc.encErr('Unknown', 'Unknown method'), 'unknown method 9')
  await call(client, M.GET, b4a.from([5, 1]), rpc.encErr('Unknown', 'Bad request payload'), 'GET bad payload')
  await call(client, M.GET, b4a.from('026b31', 'hex'), rpc.encOk(), 'GET body without caps byte')

  // 64 concurrent GETs on distinct keys.
  for (let i = 0; i < 64; i++) await call(client, M.PUT, rpc.encPutBody(`c/${i}`, `val-${i}`), rpc.encOk(), `PUT c/${i}`)
  await Promise.all(Array.from({ length: 64 }, (_, i) =>
    call(client, M.GET, rpc.encKeyBody(`c/${i}`), rpc.encOk(`val-${i}`), `concurrent GET c/${i}`)))

  // Timeout: the client gives up after 100 ms and sends CANCEL; the server
  // must not answer the cancelled request, and the lane keeps working.
  const slow = await client.call(M.GET, rpc.encKeyBody('example/slow'), { timeoutMs: 100 })
  expect(slow.timedOut === true, `slow GET answered within 100 ms: ${slow.frames.length} frames`)
  expect(client.cancelsSent.includes(slow.rid), 'no CANCEL sent for the timed-out request')
  await call(client, M.GET, rpc.encKeyBody('m/2'), rpc.encOk('vm/2'), 'GET after cancel')
  await new Promise((resolve) => setTimeout(resolve, 2300))
  expect(!client.lateRids.includes(slow.rid), 'server answered the cancelled slow GET')
  // Without cancel the slow GET answers after its delay.
  await call(client, M.GET, rpc.encKeyBody('example/slow'), rpc.encOk(), 'slow GET without cancel', { timeoutMs: 10000 })

  // 300 KiB PUT body: over the 256 KiB request limit.
  const big = rpc.encPutBody('big', b4a.alloc(300 * 1024, 7))
  await call(client, M.PUT, big, rpc.encErr('PayloadTooLarge', 'Request payload exceeds limit'), 'oversized PUT')
  await call(client, M.GET, rpc.encKeyBody('big'), rpc.encOk(), 'GET big after refused PUT')
}

async function scan (client, req, items, what, layout = 'flags') {
  const res = await client.call(rpc.METHOD.SCAN, rpc.encScanBody(req, layout))
  const frames = res.frames
  if (frames.length !== items.length + 1) {
    const last = frames[frames.length - 1]
    let env = ''
    try {
      const e = rpc.decEnvelope(last.payload)
      env = e.ok ? ' (last: ok)' : ` (last: err ${e.code} ${JSON.stringify(e.message)})`
    } catch {}
    throw new Error(`${what}: ${frames.length} frames, want ${items.length + 1}${env}`)
  }
  items.forEach(([k, v], i) => {
    const f = frames[i]
    expect(f.mid === rpc.METHOD.SCAN && f.more === true, `${what}: item ${i} mid=${f.mid} more=${f.more}`)
    expectBytes(f.payload, rpc.encOk(v, k), `${what}: item ${i}`)
  })
  const end = frames[frames.length - 1]
  expect(end.more === false && end.mid === rpc.METHOD.SCAN && end.payload.byteLength === 0,
    `${what}: end frame more=${end.more} payload ${hex(end.payload)}`)
}

const NAMES = Object.keys(scenarios)

// Runs the named scenarios (each on its own connection); returns true if all passed.
async function runScenarios (url, names, opts, out = console.log) {
  let allOk = true
  for (const name of names) {
    const fn = scenarios[name]
    let stream = null
    try {
      stream = await transport.connect(url)
      const { mux, received } = muxWithTap(stream)
      const streamErrors = []
      stream.on('error', (err) => streamErrors.push(err))
      const notes = []
      await withTimeout(fn({ mux, received, opts, url, log: (m) => notes.push(m) }), 60000, name)
      if (streamErrors.length > 0) throw new Error(`stream error: ${streamErrors[0].message}`)
      if (stream.destroyed) throw new Error('connection closed during the scenario')
      out(`ok ${name}`)
      for (const n of notes) process.stderr.write(`note ${n}\n`)
    } catch (err) {
      allOk = false
      out(`FAIL ${name}: ${err.message}`)
    } finally {
      if (stream !== null) stream.destroy()
    }
  }
  return allOk
}

function withTimeout (p, ms, what) {
  let timer
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise((resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} did not finish in ${ms} ms`)), ms)
    })
  ])
}

module.exports = { runScenarios, NAMES }
