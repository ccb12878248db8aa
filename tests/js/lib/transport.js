'use strict'
// Transports for the test peer: TCP with u32-LE length framing (framed-stream)
// and WebSocket with one binary message per Protomux message (no prefix).

const net = require('net')
const { Duplex } = require('streamx')
const FramedStream = require('framed-stream')
const { WebSocket, WebSocketServer } = require('ws')

// Above this many queued bytes a write waits for the socket to drain.
const WS_HIGH_WATER = 1024 * 1024

// A streamx Duplex over a `ws` socket: each received WebSocket message is one
// `data` chunk and each write is one binary WebSocket message, the same
// mapping as neonplex's createWebSocketStream.
class WsDuplex extends Duplex {
  constructor (socket) {
    super()
    this.socket = socket
    this._opening = null
    socket.binaryType = 'nodebuffer'
    socket.on('message', (data) => {
      this.push(Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data))
    })
    socket.on('open', () => this._continueOpen(null))
    socket.on('error', (err) => this.destroy(err))
    socket.on('close', () => {
      this._continueOpen(new Error('WebSocket closed'))
      this.push(null)
      this.destroy()
    })
  }

  _continueOpen (err) {
    const cb = this._opening
    if (cb === null) return
    this._opening = null
    cb(err)
  }

  _open (cb) {
    if (this.socket.readyState === WebSocket.OPEN) cb(null)
    else if (this.socket.readyState === WebSocket.CONNECTING) this._opening = cb
    else cb(new Error('WebSocket is closed'))
  }

  _write (data, cb) {
    if (this.socket.readyState !== WebSocket.OPEN) return cb(new Error('WebSocket is not open'))
    if (this.socket.bufferedAmount < WS_HIGH_WATER) {
      this.socket.send(data, { binary: true })
      return cb(null)
    }
    this.socket.send(data, { binary: true }, (err) => cb(err || null))
  }

  _final (cb) {
    this.socket.close()
    cb(null)
  }

  _predestroy () {
    this._continueOpen(new Error('WebSocket stream destroyed'))
  }

  _destroy (cb) {
    if (this.socket.readyState === WebSocket.OPEN || this.socket.readyState === WebSocket.CONNECTING) {
      this.socket.terminate()
    }
    cb(null)
  }
}

function parseUrl (raw) {
  let u
  try {
    u = new URL(raw)
  } catch {
    throw new Error(`bad URL ${raw}: expected tcp://HOST:PORT or ws://HOST:PORT/path`)
  }
  const kind = u.protocol.replace(/:$/, '')
  if (kind !== 'tcp' && kind !== 'ws') throw new Error(`bad URL ${raw}: scheme must be tcp or ws`)
  if (u.port === '') throw new Error(`bad URL ${raw}: a port is required`)
  const host = u.hostname.replace(/^\[|\]$/g, '')
  return { kind, host, port: Number(u.port), path: u.pathname || '/' }
}

// Dials `url`; resolves with a message stream (one chunk = one Protomux message).
function connect (url) {
  const { kind, host, port } = parseUrl(url)
  if (kind === 'tcp') {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host, port })
      socket.setNoDelay(true)
      socket.once('error', reject)
      socket.once('connect', () => {
        socket.removeListener('error', reject)
        resolve(new FramedStream(socket))
      })
    })
  }
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url, { perMessageDeflate: false })
    socket.once('error', reject)
    socket.once('open', () => {
      socket.removeListener('error', reject)
      resolve(new WsDuplex(socket))
    })
  })
}

// Listens on `url` and calls `onstream(stream)` per connection. Resolves with
// { url, close } where url carries the real port.
function listen (url, onstream) {
  const { kind, host, port, path } = parseUrl(url)
  if (kind === 'tcp') {
    return new Promise((resolve, reject) => {
      const sockets = new Set()
      const server = net.createServer((socket) => {
        socket.setNoDelay(true)
        sockets.add(socket)
        socket.on('close', () => sockets.delete(socket))
        onstream(new FramedStream(socket))
      })
      server.once('error', reject)
      server.listen(port, host, () => {
        const real = server.address().port
        resolve({
          url: `tcp://${formatHost(host)}:${real}`,
          close () {
            for (const s of sockets) s.destroy()
            server.close()
          }
        })
      })
    })
  }
  return new Promise((resolve, reject) => {
    const wss = new WebSocketServer({ host, port, path, perMessageDeflate: false })
    wss.on('connection', (socket) => onstream(new WsDuplex(socket)))
    wss.once('error', reject)
    wss.once('listening', () => {
      const real = wss.address().port
      resolve({
        url: `ws://${formatHost(host)}:${real}${path}`,
        close () {
          for (const s of wss.clients) s.terminate()
          wss.close()
        }
      })
    })
  })
}

function formatHost (host) {
  return host.includes(':') ? `[${host}]` : host
}

module.exports = { connect, listen, parseUrl, WsDuplex }
