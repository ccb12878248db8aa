'use strict'
// Client-side helpers: a raw-encoded Protomux channel that records what
// happens to it, and a wire tap that records every received message.

const b4a = require('b4a')
const c = require('compact-encoding')
const Protomux = require('protomux')

const DEFAULT_WAIT_MS = 10000

// Records events { kind: 'open'|'msg'|'close', data?, remote? } in order.
class Chan {
  constructor (mux, { protocol, id, handshake = b4a.alloc(0) }) {
    this.events = []
    this.messages = []
    this.handshake = null
    this.opened = false
    this.closed = false
    this.closedRemote = null
    this._waiters = new Set()
    this.ch = mux.createChannel({
      protocol,
      id: b4a.from(id),
      unique: false,
      handshake: c.raw,
      messages: [{ encoding: c.raw, onmessage: (m) => this._event({ kind: 'msg', data: b4a.from(m) }) }],
      onopen: (hs) => this._event({ kind: 'open', data: b4a.from(hs) }),
      onclose: (remote) => this._event({ kind: 'close', remote })
    })
    if (this.ch === null) throw new Error('createChannel returned null (stream destroyed?)')
    this._handshakeOut = b4a.from(handshake)
  }

  open () {
    this.ch.open(this._handshakeOut)
    return this
  }

  send (data) {
    return this.ch.messages[0].send(b4a.from(data))
  }

  close () {
    this.ch.close()
  }

  _event (e) {
    this.events.push(e)
    if (e.kind === 'open') {
      this.opened = true
      this.handshake = e.data
    } else if (e.kind === 'msg') {
      this.messages.push(e.data)
    } else {
      this.closed = true
      this.closedRemote = e.remote
    }
    for (const w of this._waiters) w()
  }

  // Resolves when pred() is true; rejects after ms with `what` in the message.
  waitFor (pred, what, ms = DEFAULT_WAIT_MS) {
    if (pred()) return Promise.resolve()
    return new Promise((resolve, reject) => {
      const check = () => {
        if (!pred()) return
        done()
        resolve()
      }
      const timer = setTimeout(() => {
        done()
        reject(new Error(`timed out waiting for ${what} (events: ${this.describe()})`))
      }, ms)
      const done = () => {
        clearTimeout(timer)
        this._waiters.delete(check)
      }
      this._waiters.add(check)
    })
  }

  waitOpen () {
    return this.waitFor(() => this.opened || this.closed, 'open').then(() => {
      if (!this.opened) throw new Error(`channel closed before opening (events: ${this.describe()})`)
    })
  }

  waitMessages (n, ms) {
    return this.waitFor(() => this.messages.length >= n || this.closed, `${n} messages`, ms).then(() => {
      if (this.messages.length < n) throw new Error(`channel closed after ${this.messages.length}/${n} messages`)
    })
  }

  waitClose (ms) {
    return this.waitFor(() => this.closed, 'close', ms)
  }

  describe () {
    const parts = this.events.slice(0, 8).map((e) => {
      if (e.kind === 'close') return `close(remote=${e.remote})`
      const s = e.data.byteLength <= 24 ? JSON.stringify(b4a.toString(e.data)) : `${e.data.byteLength}B`
      return `${e.kind} ${s}`
    })
    if (this.events.length > 8) parts.push(`… ${this.events.length - 8} more`)
    return parts.join(', ') || 'none'
  }
}

// Parses one Protomux message into a list of { channel, type, body } items
// (a BATCH yields its items, with `batch: true`).
function parseMessage (buf) {
  const state = { start: 0, end: buf.byteLength, buffer: buf }
  const channel = c.uint.decode(state)
  const type = c.uint.decode(state)
  if (channel !== 0 || type !== 0) {
    return [{ channel, type, body: buf.subarray(state.start), batch: false }]
  }
  const items = []
  let ch = c.uint.decode(state)
  while (state.start < state.end) {
    const len = c.uint.decode(state)
    if (len === 0) {
      ch = c.uint.decode(state)
      continue
    }
    const item = { start: state.start, end: state.start + len, buffer: buf }
    const t = c.uint.decode(item)
    items.push({ channel: ch, type: t, body: buf.subarray(item.start, item.end), batch: true })
    state.start += len
  }
  return items
}

// Connects a Protomux to `stream` and records every received message.
function muxWithTap (stream) {
  const received = []
  stream.on('data', (buf) => received.push(b4a.from(buf)))
  const mux = new Protomux(stream)
  return { mux, received }
}

module.exports = { Chan, parseMessage, muxWithTap }
