'use strict'
// bench-client: echo throughput and store-port GET rate/latency.

const crypto = require('crypto')
const b4a = require('b4a')
const transport = require('./transport')
const rpc = require('./rpc')
const Protomux = require('protomux')
const { Chan } = require('./chan')
const { RpcClient } = require('./rpc-client')

async function benchEcho (mux, seconds, inflight) {
  const payload = crypto.randomBytes(1024)
  const ch = new Chan(mux, { protocol: 'plex-test/echo', id: 'bench-echo' }).open()
  await ch.waitOpen()
  let received = 0
  let sent = 0
  let stopAt = 0
  let started = 0
  await new Promise((resolve, reject) => {
    ch.ch.messages[0].onmessage = (m) => {
      if (m.byteLength !== payload.byteLength) return reject(new Error(`echo of ${m.byteLength} bytes`))
      received++
      if (performance.now() < stopAt) {
        ch.send(payload)
        sent++
      } else if (received === sent) {
        resolve()
      }
    }
    ch.ch.onclose = () => reject(new Error('echo channel closed during the benchmark'))
    started = performance.now()
    stopAt = started + seconds * 1000
    for (let i = 0; i < inflight; i++) {
      ch.send(payload)
      sent++
    }
  })
  const elapsed = (performance.now() - started) / 1000
  ch.close()
  return received / elapsed
}

async function benchRpc (mux, seconds, inflight, opts) {
  const client = new RpcClient(mux, opts)
  await client.ready()
  const value = crypto.randomBytes(1024)
  const put = await client.call(rpc.METHOD.PUT, rpc.encPutBody('bench/key', value))
  if (put.timedOut || !b4a.equals(put.frames[0].payload, rpc.encOk())) throw new Error('bench PUT failed')
  const want = rpc.encOk(value)
  const body = rpc.encKeyBody('bench/key')
  const lat = []
  const started = performance.now()
  const stopAt = started + seconds * 1000
  const worker = async () => {
    while (performance.now() < stopAt) {
      const t0 = process.hrtime.bigint()
      const res = await client.call(rpc.METHOD.GET, body)
      const us = Number(process.hrtime.bigint() - t0) / 1000
      if (res.timedOut || !b4a.equals(res.frames[0].payload, want)) throw new Error(`GET rid ${res.rid} failed`)
      lat.push(us)
    }
  }
  await Promise.all(Array.from({ length: inflight }, worker))
  const elapsed = (performance.now() - started) / 1000
  lat.sort((a, b) => a - b)
  const pct = (p) => (lat.length === 0 ? 0 : lat[Math.min(lat.length - 1, Math.floor(lat.length * p))])
  return { rate: lat.length / elapsed, p50: pct(0.5), p99: pct(0.99) }
}

async function runBench (url, { seconds, inflight, base, id }) {
  const stream = await transport.connect(url)
  try {
    const mux = new Protomux(stream)
    const echo = await benchEcho(mux, seconds, inflight)
    const r = await benchRpc(mux, seconds, inflight, { base, id })
    return {
      echo_msgs_per_s: Math.round(echo),
      rpc_calls_per_s: Math.round(r.rate),
      rpc_p50_us: Math.round(r.p50),
      rpc_p99_us: Math.round(r.p99)
    }
  } finally {
    stream.destroy()
  }
}

module.exports = { runBench }
