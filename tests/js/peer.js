#!/usr/bin/env node
'use strict'
// Plex JavaScript test peer, built on the npm protomux / framed-stream /
// compact-encoding packages neonplex uses. See README.md and SERVICES.md.

const Protomux = require('protomux')
const transport = require('./lib/transport')
const { serve } = require('./lib/services')
const { runScenarios, NAMES } = require('./lib/scenarios')
const { runBench } = require('./lib/bench')

const USAGE = `usage:
  node peer.js server       --listen URL [--base B] [--id ID]
  node peer.js bench-server --listen URL [--base B] [--id ID]
  node peer.js client       --connect URL [--only NAME,...] [--base B] [--id ID]
  node peer.js bench-client --connect URL [--seconds S] [--inflight N] [--base B] [--id ID]
URL: tcp://HOST:PORT (u32-LE framed) or ws://HOST:PORT/PATH (one message per WebSocket message); port 0 allowed when listening.
defaults: --base neonloom/protocol/v1 --id example-store --seconds 5 --inflight 64
scenarios: ${NAMES.join(', ')}`

function parseArgs (argv) {
  const mode = argv[0]
  const opts = { base: 'neonloom/protocol/v1', id: 'example-store', seconds: 5, inflight: 64, only: null }
  const valued = new Set(['--listen', '--connect', '--only', '--base', '--id', '--seconds', '--inflight'])
  for (let i = 1; i < argv.length; i++) {
    const a = argv[i]
    if (!valued.has(a)) throw new Error(`unknown option ${a}`)
    const v = argv[++i]
    if (v === undefined) throw new Error(`${a} needs a value`)
    opts[a.slice(2)] = v
  }
  opts.seconds = Number(opts.seconds)
  opts.inflight = Number(opts.inflight)
  if (!(opts.seconds > 0)) throw new Error('--seconds must be a positive number')
  if (!Number.isInteger(opts.inflight) || opts.inflight < 1) throw new Error('--inflight must be a positive integer')
  if (opts.only !== null) {
    opts.only = opts.only.split(',').filter(Boolean)
    for (const n of opts.only) if (!NAMES.includes(n)) throw new Error(`unknown scenario ${n}`)
  }
  return { mode, opts }
}

async function runServer (opts) {
  if (!opts.listen) throw new Error('server needs --listen URL')
  const server = await transport.listen(opts.listen, (stream) => {
    stream.on('error', (err) => process.stderr.write(`connection error: ${err.message}\n`))
    const mux = new Protomux(stream)
    serve(mux, { base: opts.base, id: Buffer.from(opts.id) })
  })
  process.stdout.write(`LISTENING ${server.url}\n`)
  const stop = () => {
    server.close()
    process.exit(0)
  }
  process.stdin.on('end', stop)
  process.stdin.on('close', stop)
  process.stdin.on('error', stop)
  process.stdin.resume()
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
}

async function main () {
  let parsed
  try {
    parsed = parseArgs(process.argv.slice(2))
  } catch (err) {
    process.stderr.write(`${err.message}\n${USAGE}\n`)
    process.exit(2)
  }
  const { mode, opts } = parsed
  switch (mode) {
    case 'server':
    case 'bench-server':
      return runServer(opts)
    case 'client': {
      if (!opts.connect) throw new Error('client needs --connect URL')
      const ok = await runScenarios(opts.connect, opts.only || NAMES, opts)
      process.exit(ok ? 0 : 1)
      break
    }
    case 'bench-client': {
      if (!opts.connect) throw new Error('bench-client needs --connect URL')
      const result = await runBench(opts.connect, opts)
      process.stdout.write(JSON.stringify(result) + '\n')
      process.exit(0)
      break
    }
    default:
      process.stderr.write(`unknown mode ${mode}\n${USAGE}\n`)
      process.exit(2)
  }
}

main().catch((err) => {
  process.stderr.write(`error: ${err && err.stack ? err.stack : err}\n`)
  process.exit(1)
})
