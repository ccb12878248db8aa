'use strict'
// The test services of SERVICES.md, served on one Protomux per connection.

const crypto = require('crypto')
const b4a = require('b4a')
const c = require('compact-encoding')
const rpc = require('./rpc')

const P = {
  echo: 'plex-test/echo',
  reject: 'plex-test/reject',
  close: 'plex-test/close',
  batch: 'plex-test/batch',
  count: 'plex-test/count',
  sink: 'plex-test/sink'
}

// Largest N the count service sends; a larger or non-decimal N closes at once.
const MAX_COUNT = 1000000
// Delay of a GET for `example/slow`.
const SLOW_MS = 2000
// In-flight request limit per RPC channel (neonplex PLEX_RPC_MAX_SERVER_ROUTES).
const MAX_SERVER_ROUTES = 256

// The opener's handshake of the OPEN that is waiting for `(protocol, id)`.
// protomux hands the remote handshake to onopen only after our own OPEN has
// been sent, so a listener whose handshake depends on it must read the parked
// OPEN. This reads protomux 3.10.1 internals (the version is pinned).
function parkedHandshake (mux, protocol, id) {
  const key = protocol + '##' + (id ? b4a.toString(id, 'hex') : '')
  const info = mux._infos.get(key)
  if (!info || info.incoming.length === 0) return b4a.alloc(0)
  const r = mux._remote[info.incoming[0] - 1]
  if (!r || !r.state) return b4a.alloc(0)
  return b4a.from(r.state.buffer.subarray(r.state.start, r.state.end))
}

function echoing (mux, protocol, id, handshake) {
  const ch = mux.createChannel({
    protocol,
    id,
    handshake: c.raw,
    messages: [{ encoding: c.raw, onmessage: (m) => ch.messages[0].send(m) }]
  })
  if (ch === null) return null
  ch.open(handshake)
  return ch
}

function serveEcho (mux) {
  mux.pair({ protocol: P.echo }, (id) => {
    const hs = parkedHandshake(mux, P.echo, id)
    echoing(mux, P.echo, id, b4a.concat([b4a.from('srv:'), hs]))
  })
}

function serveClose (mux) {
  mux.pair({ protocol: P.close }, (id) => {
    const ch = mux.createChannel({
      protocol: P.close,
      id,
      handshake: c.raw,
      messages: [{
        encoding: c.raw,
        onmessage (m) {
          ch.messages[0].send(m)
          ch.close()
        }
      }]
    })
    if (ch !== null) ch.open(b4a.alloc(0))
  })
}

function serveBatch (mux) {
  mux.pair({ protocol: P.batch }, (id) => {
    mux.cork()
    try {
      const ch = echoing(mux, P.batch, id, b4a.alloc(0))
      if (ch !== null) {
        for (const m of ['b1', 'b2', 'b3']) ch.messages[0].send(b4a.from(m))
      }
    } finally {
      mux.uncork()
    }
  })
}

function serveCount (mux) {
  mux.pair({ protocol: P.count }, (id) => {
    const ch = mux.createChannel({
      protocol: P.count,
      id,
      handshake: c.raw,
      messages: [{ encoding: c.raw }],
      onopen (hs) {
        const text = b4a.toString(hs)
        const n = /^[0-9]{1,7}$/.test(text) ? Number(text) : -1
        if (n >= 0 && n <= MAX_COUNT) {
          for (let i = 0; i < n; i++) ch.messages[0].send(b4a.from('m' + i))
        }
        ch.close()
      }
    })
    if (ch !== null) ch.open(b4a.alloc(0))
  })
}

function serveSink (mux) {
  mux.pair({ protocol: P.sink }, (id) => {
    const ch = mux.createChannel({
      protocol: P.sink,
      id,
      handshake: c.raw,
      messages: [{
        encoding: c.raw,
        onmessage (m) {
          const hex = crypto.createHash('sha256').update(m).digest('hex')
          ch.messages[0].send(b4a.from(`${m.byteLength} ${hex}`))
        }
      }]
    })
    if (ch !== null) ch.open(b4a.alloc(0))
  })
}

// ---- RPC store port -------------------------------------------------------

class MemoryStore {
  constructor () {
    this.map = new Map() // hex(key) -> { key, value }
    this.appended = 0
  }

  get (key) {
    const e = this.map.get(b4a.toString(key, 'hex'))
    return e ? e.value : null
  }

  put (key, value) {
    this.map.set(b4a.toString(key, 'hex'), { key, value })
  }

  del (key) {
    this.map.delete(b4a.toString(key, 'hex'))
  }

  append (value) {
    this.appended++
    const key = b4a.from('log/' + String(this.appended).padStart(8, '0'))
    this.put(key, value)
    return key
  }

  scan ({ prefix, reverse, range }) {
    const out = []
    for (const e of this.map.values()) {
      const k = e.key
      if (prefix && (k.byteLength < prefix.byteLength || b4a.compare(k.subarray(0, prefix.byteLength), prefix) !== 0)) continue
      if (range.gte && b4a.compare(k, range.gte) < 0) continue
      if (range.gt && b4a.compare(k, range.gt) <= 0) continue
      if (range.lte && b4a.compare(k, range.lte) > 0) continue
      if (range.lt && b4a.compare(k, range.lt) >= 0) continue
      out.push(e)
    }
    out.sort((a, b) => b4a.compare(a.key, b.key))
    if (reverse) out.reverse()
    return out
  }
}

const DENY = b4a.from('deny')

function serveRpc (mux, { base, id }) {
  const protocol = base + '/rpc'
  const store = new MemoryStore() // one store per connection
  mux.pair({ protocol, id }, () => {
    const inflight = new Map() // rid -> timer of a delayed GET
    const ch = mux.createChannel({
      protocol,
      id,
      handshake: c.raw,
      messages: [{ encoding: c.raw, onmessage: onframe }],
      onclose () {
        for (const t of inflight.values()) clearTimeout(t)
        inflight.clear()
      }
    })
    if (ch === null) return
    ch.open(b4a.alloc(0))

    const send = (rid, mid, more, payload) => ch.messages[0].send(rpc.encRes(rid, mid, more, payload))

    function onframe (buf) {
      const f = rpc.decFrame(buf)
      if (f === null) return
      if (f.t === rpc.FT_CANCEL) {
        const t = inflight.get(f.rid)
        if (t !== undefined) {
          clearTimeout(t)
          inflight.delete(f.rid)
        }
        return
      }
      if (f.t !== rpc.FT_REQ) return
      const { rid, mid, payload } = f
      if (payload.byteLength > rpc.MAX_REQUEST_BYTES) {
        return send(rid, mid, false, rpc.encErr('PayloadTooLarge', 'Request payload exceeds limit'))
      }
      if (mid > rpc.METHOD.APPEND) return send(rid, mid, false, rpc.encErr('Unknown', 'Unknown method'))
      let body
      try {
        body = rpc.decBody(mid, payload)
      } catch {
        return send(rid, mid, false, rpc.encErr('Unknown', 'Bad request payload'))
      }
      if (inflight.size >= MAX_SERVER_ROUTES) {
        send(rid, mid, false, rpc.encErr('NotReady', 'Too many in-flight requests'))
        // Close on a later turn, as neonplex's server does: a neonplex client
        // that reads the RES and the CLOSE in one chunk loses the RES.
        setImmediate(() => ch.close())
        return
      }
      if (body.caps !== null && b4a.equals(body.caps, DENY)) {
        return send(rid, mid, false, rpc.encErr('CapabilityDenied', 'denied'))
      }
      switch (mid) {
        case rpc.METHOD.GET: {
          const k = b4a.toString(body.key)
          if (k === 'example/fail') return send(rid, mid, false, rpc.encErr('BadArg', 'forced error'))
          if (k === 'example/slow') {
            inflight.set(rid, setTimeout(() => {
              inflight.delete(rid)
              send(rid, mid, false, rpc.encOk(store.get(body.key)))
            }, SLOW_MS))
            return
          }
          return send(rid, mid, false, rpc.encOk(store.get(body.key)))
        }
        case rpc.METHOD.PUT:
          store.put(body.key, body.value)
          return send(rid, mid, false, rpc.encOk())
        case rpc.METHOD.DEL:
          store.del(body.key)
          return send(rid, mid, false, rpc.encOk())
        case rpc.METHOD.APPEND:
          return send(rid, mid, false, rpc.encOk(null, store.append(body.value)))
        case rpc.METHOD.SCAN:
          for (const e of store.scan(body)) send(rid, mid, true, rpc.encOk(e.value, e.key))
          return send(rid, mid, false, b4a.alloc(0))
      }
    }
  })
}

// neonplex's smoke echo (dev/smoke/tcp.js, ws.js): the bare base protocol,
// any id, empty handshake, every message echoed.
function serveSmoke (mux, base) {
  mux.pair({ protocol: base }, (id) => echoing(mux, base, id, b4a.alloc(0)))
}

// Installs every test service on `mux`.
function serve (mux, { base, id }) {
  serveSmoke(mux, base)
  serveEcho(mux)
  serveClose(mux)
  serveBatch(mux)
  serveCount(mux)
  serveSink(mux)
  serveRpc(mux, { base, id })
  // plex-test/reject: nothing is paired, so protomux REJECTs every OPEN.
}

module.exports = { serve, P, SLOW_MS }
