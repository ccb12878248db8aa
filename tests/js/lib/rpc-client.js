'use strict'
// A minimal RPC client on one lane channel: REQ out, RES frames collected per
// rid, CANCEL on timeout. Used by the scenarios and the benchmark.

const b4a = require('b4a')
const c = require('compact-encoding')
const rpc = require('./rpc')

const DEFAULT_TIMEOUT_MS = 10000

class RpcClient {
  constructor (mux, { base, id }) {
    this.nextRid = 1
    this.routes = new Map() // rid -> { frames, resolve, reject, timer }
    this.cancelsSent = []
    this.lateRids = []
    this.closed = false
    this._openWaiters = []
    this.opened = false
    this.ch = mux.createChannel({
      protocol: base + '/rpc',
      id: b4a.from(id),
      unique: false,
      handshake: c.raw,
      messages: [{ encoding: c.raw, onmessage: (m) => this._onframe(m) }],
      onopen: () => {
        this.opened = true
        this._settleOpen(null)
      },
      onclose: () => {
        this.closed = true
        this._settleOpen(new Error('RPC lane closed before opening'))
        for (const [rid, r] of this.routes) {
          clearTimeout(r.timer)
          r.reject(new Error(`RPC lane closed with request ${rid} pending`))
        }
        this.routes.clear()
      }
    })
    if (this.ch === null) throw new Error('createChannel returned null')
    this.ch.open(b4a.alloc(0))
  }

  _settleOpen (err) {
    for (const w of this._openWaiters) w(err)
    this._openWaiters = []
  }

  ready () {
    if (this.opened) return Promise.resolve()
    if (this.closed) return Promise.reject(new Error('RPC lane closed before opening'))
    return new Promise((resolve, reject) => this._openWaiters.push((err) => (err ? reject(err) : resolve())))
  }

  _onframe (buf) {
    const f = rpc.decFrame(b4a.from(buf))
    if (f === null) return
    const r = this.routes.get(f.rid)
    if (r === undefined) {
      this.lateRids.push(f.rid)
      return
    }
    r.frames.push(f)
    if (f.t !== rpc.FT_RES || !f.more) {
      this.routes.delete(f.rid)
      clearTimeout(r.timer)
      r.resolve({ rid: f.rid, frames: r.frames, timedOut: false })
    }
  }

  // Sends one REQ; resolves { rid, frames, timedOut } when the last frame
  // (more = 0) arrives, or with timedOut after a CANCEL when timeoutMs passes.
  call (mid, body, { timeoutMs = DEFAULT_TIMEOUT_MS } = {}) {
    if (this.closed) return Promise.reject(new Error('RPC lane closed'))
    const rid = this.nextRid++
    return new Promise((resolve, reject) => {
      const route = { frames: [], resolve, reject, timer: null }
      route.timer = setTimeout(() => {
        this.routes.delete(rid)
        this.ch.messages[0].send(rpc.encCancel(rid, mid))
        this.cancelsSent.push(rid)
        resolve({ rid, frames: route.frames, timedOut: true })
      }, timeoutMs)
      this.routes.set(rid, route)
      this.ch.messages[0].send(rpc.encReq(rid, mid, body))
    })
  }
}

module.exports = { RpcClient }
