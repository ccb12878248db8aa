'use strict'
// neonplex RPC wire (research doc §7-§8), written from the byte layouts:
// frames REQ/RES/CANCEL, the ok/err envelope and the store request bodies.

const b4a = require('b4a')
const c = require('compact-encoding')

const FT_REQ = 0
const FT_RES = 1
const FT_CANCEL = 2

const METHOD = { GET: 0, PUT: 1, DEL: 2, SCAN: 3, APPEND: 4 }
const METHOD_NAME = ['GET', 'PUT', 'DEL', 'SCAN', 'APPEND']

// Largest REQ body (bytes after the 6-byte header) a server accepts.
const MAX_REQUEST_BYTES = 256 * 1024

// ---- frames ---------------------------------------------------------------

function u32 (n) {
  const b = b4a.alloc(4)
  b[0] = n & 0xff
  b[1] = (n >>> 8) & 0xff
  b[2] = (n >>> 16) & 0xff
  b[3] = (n >>> 24) & 0xff
  return b
}

function readU32 (buf, off) {
  return (buf[off] | (buf[off + 1] << 8) | (buf[off + 2] << 16)) + buf[off + 3] * 0x1000000
}

function encReq (rid, mid, body) {
  return b4a.concat([b4a.from([FT_REQ]), u32(rid), b4a.from([mid]), body])
}

function encRes (rid, mid, more, payload) {
  return b4a.concat([b4a.from([FT_RES]), u32(rid), b4a.from([mid, more ? 1 : 0]), payload])
}

function encCancel (rid, mid) {
  return b4a.concat([b4a.from([FT_CANCEL]), u32(rid), b4a.from([mid])])
}

// Returns { t, rid, mid, more?, payload? } or null for a frame too short to
// carry its header.
function decFrame (buf) {
  if (buf.byteLength < 6) return null
  const t = buf[0]
  const rid = readU32(buf, 1)
  const mid = buf[5]
  if (t === FT_RES) {
    if (buf.byteLength < 7) return null
    return { t, rid, mid, more: buf[6] === 1, payload: buf.subarray(7) }
  }
  if (t === FT_REQ) return { t, rid, mid, payload: buf.subarray(6) }
  return { t, rid, mid }
}

// ---- envelope -------------------------------------------------------------

// ok: 01 | hasValue u8 | len u32 | value | hasKey u8 | len u32 | key
function encOk (value = null, key = null) {
  const v = value === null ? null : b4a.from(value)
  const k = key === null ? null : b4a.from(key)
  return b4a.concat([
    b4a.from([1, v === null ? 0 : 1]), u32(v === null ? 0 : v.byteLength), v || b4a.alloc(0),
    b4a.from([k === null ? 0 : 1]), u32(k === null ? 0 : k.byteLength), k || b4a.alloc(0)
  ])
}

function u16 (n) {
  return b4a.from([n & 0xff, (n >>> 8) & 0xff])
}

// err: 00 | codeLen u16 | code | msgLen u16 | message
function encErr (code, message) {
  const cb = b4a.from(code)
  const mb = b4a.from(message)
  return b4a.concat([b4a.from([0]), u16(cb.byteLength), cb, u16(mb.byteLength), mb])
}

// Strict envelope decoder for checks; throws on any malformed envelope.
function decEnvelope (buf) {
  if (buf.byteLength === 0) return { ok: true, value: null, key: null, empty: true }
  let off = 0
  const need = (n) => {
    if (off + n > buf.byteLength) throw new Error('truncated envelope')
  }
  if (buf[0] === 1) {
    off = 1
    need(5)
    const hasValue = buf[off]
    const vlen = readU32(buf, off + 1)
    off += 5
    need(vlen)
    const value = hasValue === 1 ? buf.subarray(off, off + vlen) : null
    off += vlen
    need(5)
    const hasKey = buf[off]
    const klen = readU32(buf, off + 1)
    off += 5
    need(klen)
    const key = hasKey === 1 ? buf.subarray(off, off + klen) : null
    off += klen
    if (off !== buf.byteLength) throw new Error('trailing bytes after envelope')
    return { ok: true, value, key }
  }
  off = 1
  need(2)
  const clen = buf[off] | (buf[off + 1] << 8)
  off += 2
  need(clen)
  const code = b4a.toString(buf.subarray(off, off + clen))
  off += clen
  need(2)
  const mlen = buf[off] | (buf[off + 1] << 8)
  off += 2
  need(mlen)
  const message = b4a.toString(buf.subarray(off, off + mlen))
  off += mlen
  if (off !== buf.byteLength) throw new Error('trailing bytes after envelope')
  return { ok: false, code, message }
}

// ---- store bodies ---------------------------------------------------------

function strictState (buf) {
  return { start: 0, end: buf.byteLength, buffer: buf }
}

function decU8 (state) {
  return b4a.from(c.uint8array.decode(state)) // copy: never alias the frame
}

function decBool (state) {
  if (state.start >= state.end) throw new Error('truncated bool')
  const b = state.buffer[state.start++]
  if (b > 1) throw new Error('bool out of range')
  return b === 1
}

// caps = bool hasCaps · [U8]; a body may end before the caps byte.
function decCaps (state) {
  if (state.start === state.end) return null
  const has = decBool(state)
  return has ? decU8(state) : null
}

function finish (state, out) {
  out.caps = decCaps(state)
  if (state.start !== state.end) throw new Error('trailing bytes in body')
  return out
}

function encode (fields) {
  const state = { start: 0, end: 0, buffer: null }
  for (const [enc, v] of fields) enc.preencode(state, v)
  state.buffer = b4a.allocUnsafe(state.end)
  for (const [enc, v] of fields) enc.encode(state, v)
  return state.buffer
}

function capsFields (caps) {
  const cb = caps == null ? null : b4a.from(caps)
  if (cb === null || cb.byteLength === 0) return [[c.bool, false]]
  return [[c.bool, true], [c.uint8array, cb]]
}

function encKeyBody (key, caps) {
  return encode([[c.uint8array, b4a.from(key)], ...capsFields(caps)])
}

function encPutBody (key, value, caps) {
  return encode([[c.uint8array, b4a.from(key)], [c.uint8array, b4a.from(value)], ...capsFields(caps)])
}

function encAppendBody (value, caps) {
  return encode([[c.uint8array, b4a.from(value)], ...capsFields(caps)])
}

const BOUNDS = ['gte', 'gt', 'lte', 'lt']

// SCAN body. layout 'flags' (default) = bool hasPrefix [U8] bool reverse
// 4 bools then the present bounds; 'interleaved' = neonplex's encoder layout
// (bool + value per bound).
function encScanBody ({ prefix = null, reverse = false, range = {}, caps = null } = {}, layout = 'flags') {
  const p = prefix == null ? null : b4a.from(prefix)
  const fields = []
  if (p !== null && p.byteLength > 0) fields.push([c.bool, true], [c.uint8array, p])
  else fields.push([c.bool, false])
  fields.push([c.bool, !!reverse])
  if (layout === 'flags') {
    for (const b of BOUNDS) fields.push([c.bool, range[b] != null])
    for (const b of BOUNDS) if (range[b] != null) fields.push([c.uint8array, b4a.from(range[b])])
  } else {
    for (const b of BOUNDS) {
      fields.push([c.bool, range[b] != null])
      if (range[b] != null) fields.push([c.uint8array, b4a.from(range[b])])
    }
  }
  fields.push(...capsFields(caps))
  return encode(fields)
}

function decScanWith (buf, layout) {
  const state = strictState(buf)
  const out = { prefix: null, reverse: false, range: {} }
  if (decBool(state)) out.prefix = decU8(state)
  out.reverse = decBool(state)
  if (layout === 'flags') {
    const flags = BOUNDS.map(() => decBool(state))
    BOUNDS.forEach((b, i) => { if (flags[i]) out.range[b] = decU8(state) })
  } else {
    for (const b of BOUNDS) if (decBool(state)) out.range[b] = decU8(state)
  }
  return finish(state, out)
}

// Decodes a request body for `mid`; throws on a malformed body. SCAN tries
// the flags-first layout, then the interleaved one.
function decBody (mid, buf) {
  if (mid === METHOD.SCAN) {
    try {
      return decScanWith(buf, 'flags')
    } catch {
      return decScanWith(buf, 'interleaved')
    }
  }
  const state = strictState(buf)
  const out = {}
  if (mid === METHOD.GET || mid === METHOD.DEL) {
    out.key = decU8(state)
  } else if (mid === METHOD.PUT) {
    out.key = decU8(state)
    out.value = decU8(state)
  } else if (mid === METHOD.APPEND) {
    out.value = decU8(state)
  } else {
    throw new Error('no body layout for method ' + mid)
  }
  return finish(state, out)
}

module.exports = {
  FT_REQ,
  FT_RES,
  FT_CANCEL,
  METHOD,
  METHOD_NAME,
  MAX_REQUEST_BYTES,
  encReq,
  encRes,
  encCancel,
  decFrame,
  encOk,
  encErr,
  decEnvelope,
  encKeyBody,
  encPutBody,
  encAppendBody,
  encScanBody,
  decBody
}
