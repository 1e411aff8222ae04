#!/usr/bin/env node
// A live Helia 7.1 peer on 127.0.0.1, driven line by line over stdin/stdout,
// with the same protocol as kubo_node.py.
//
//   node tests/interop/helia_node.mjs
//
// On start it prints one JSON line:
//
//   {"peer_id": "12D3Koo...", "multiaddrs": ["/ip4/127.0.0.1/tcp/PORT/p2p/12D3Koo..."]}
//
// (or {"error": "..."} and exit status 1). Then it reads one command per line
// (arguments split like a POSIX shell) and answers each with one JSON line:
//
//   connect MULTIADDR          {"ok": true}
//   add PATH                   {"ok": true, "cid": "bafy..."}
//   get CID OUTPATH [TIMEOUT]  {"ok": true, "bytes": N, "seconds": S}   (TIMEOUT in s, default 120)
//   peers                      {"ok": true, "peers": [ID...], "addrs": [MULTIADDR/p2p/ID...]}
//   quit                       {"ok": true}, then exit 0 (EOF: same, no answer)
//
// Failures are {"ok": false, "error": "..."}. `add` uses kubo's
// `ipfs add --cid-version=1` layout (raw leaves, 262144-byte chunks, balanced,
// 174 links per node), so both peers build the same CIDs. `get` streams the
// file to OUTPATH.partial and renames it only once complete.
//
// Only loopback: TCP on 127.0.0.1, no bootstrap, mDNS, DHT, delegated or HTTP
// routing, gateways, AutoNAT, UPnP or relay. Blocks live in a temporary
// directory on disk (not in memory), removed on exit.

import './node20.mjs'

// stdout carries the protocol alone: anything a dependency logs goes to stderr.
console.log = console.error
console.info = console.error

const { setMaxListeners } = await import('node:events')
const { createReadStream, createWriteStream } = await import('node:fs')
const { mkdtemp, rename, rm, stat } = await import('node:fs/promises')
const { tmpdir } = await import('node:os')
const { join } = await import('node:path')
const { createInterface } = await import('node:readline')
const { Readable } = await import('node:stream')
const { pipeline } = await import('node:stream/promises')
const { createHeliaLight } = await import('helia')
const { withLibp2pLight } = await import('@helia/libp2p')
const { withBitswap } = await import('@helia/bitswap')
const { unixfs } = await import('@helia/unixfs')
const { FsBlockstore } = await import('blockstore-fs')
const { tcp } = await import('@libp2p/tcp')
const { noise } = await import('@libp2p/noise')
const { yamux } = await import('@libp2p/yamux')
const { identify } = await import('@libp2p/identify')
const { multiaddr } = await import('@multiformats/multiaddr')
const { CID } = await import('multiformats/cid')
const { fixedSize } = await import('ipfs-unixfs-importer/chunker')
const { balanced } = await import('ipfs-unixfs-importer/layout')

const GET_TIMEOUT_S = 120
const CONNECT_TIMEOUT_MS = 60_000

function reply (obj) {
  process.stdout.write(JSON.stringify(obj) + '\n')
}

// POSIX-shell-like word splitting: quotes and backslashes, as shlex.split does.
function splitWords (line) {
  const words = []
  let word = null
  let quote = null
  for (let i = 0; i < line.length; i++) {
    const c = line[i]
    if (quote === "'") {
      if (c === "'") quote = null
      else word += c
    } else if (quote === '"') {
      if (c === '"') quote = null
      else if (c === '\\' && i + 1 < line.length && '"\\$`'.includes(line[i + 1])) word += line[++i]
      else word += c
    } else if (c === "'" || c === '"') {
      quote = c
      word ??= ''
    } else if (c === '\\') {
      if (i + 1 >= line.length) throw new Error('no escaped character')
      word = (word ?? '') + line[++i]
    } else if (/\s/.test(c)) {
      if (word !== null) words.push(word)
      word = null
    } else {
      word = (word ?? '') + c
    }
  }
  if (quote !== null) throw new Error('no closing quotation')
  if (word !== null) words.push(word)
  return words
}

async function startHelia (workdir) {
  const blockstore = new FsBlockstore(join(workdir, 'blocks'))
  await blockstore.open()
  const helia = withBitswap(withLibp2pLight(createHeliaLight({ blockstore }), {
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    peerDiscovery: [],
    // Bitswap learns which peers speak it from identify.
    services: { identify: identify() }
  }))
  await helia.start()
  return { helia, blockstore }
}

function hello (libp2p) {
  const id = libp2p.peerId.toString()
  const addrs = libp2p.getMultiaddrs()
    .map((ma) => ma.toString())
    .filter((a) => a.startsWith('/ip4/127.0.0.1/'))
    .map((a) => (a.includes('/p2p/') ? a : `${a}/p2p/${id}`))
  if (addrs.length === 0) throw new Error('no 127.0.0.1 listen address')
  return { peer_id: id, multiaddrs: addrs }
}

async function connect (helia, addr) {
  await helia.libp2p.dial(multiaddr(addr), { signal: AbortSignal.timeout(CONNECT_TIMEOUT_MS) })
  return {}
}

async function add (fs, path) {
  const st = await stat(path)
  if (!st.isFile()) throw new Error(`${path} is not a regular file`)
  const cid = await fs.addByteStream(createReadStream(path, { highWaterMark: 1 << 20 }), {
    cidVersion: 1,
    rawLeaves: true,
    chunker: fixedSize({ chunkSize: 262144 }),
    layout: balanced({ maxChildrenPerNode: 174 }),
    reduceSingleLeafToSelf: true
  })
  return { cid: cid.toString() }
}

async function get (fs, cid, outPath, timeoutS) {
  const partial = `${outPath}.partial`
  const signal = AbortSignal.timeout(timeoutS * 1000)
  // Every block request in flight listens on this one signal.
  setMaxListeners(Infinity, signal)
  const started = process.hrtime.bigint()
  let bytes = 0
  const counted = async function * () {
    for await (const chunk of fs.cat(CID.parse(cid), { signal })) {
      bytes += chunk.length
      yield chunk
    }
  }
  try {
    await pipeline(Readable.from(counted()), createWriteStream(partial), { signal })
  } catch (err) {
    await rm(partial, { force: true })
    throw signal.aborted ? new Error('timeout') : err
  }
  const seconds = Number(process.hrtime.bigint() - started) / 1e9
  await rename(partial, outPath)
  return { bytes, seconds }
}

function peers (libp2p) {
  const ids = libp2p.getPeers().map((p) => p.toString())
  const addrs = libp2p.getConnections().map((c) => {
    const a = c.remoteAddr.toString()
    return a.includes('/p2p/') ? a : `${a}/p2p/${c.remotePeer}`
  })
  return { peers: ids, addrs }
}

async function handle (helia, fs, line) {
  let words
  try {
    words = splitWords(line)
  } catch (err) {
    return [{ ok: false, error: `cannot parse the line: ${err.message}` }, true]
  }
  if (words.length === 0) return [null, true]
  const [cmd, ...args] = words
  try {
    let answer
    if (cmd === 'connect' && args.length === 1) {
      answer = await connect(helia, args[0])
    } else if (cmd === 'add' && args.length === 1) {
      answer = await add(fs, args[0])
    } else if (cmd === 'get' && (args.length === 2 || args.length === 3)) {
      const timeout = args.length === 3 ? Number(args[2]) : GET_TIMEOUT_S
      if (!(timeout > 0)) throw new Error(`bad timeout ${args[2]}`)
      answer = await get(fs, args[0], args[1], timeout)
    } else if (cmd === 'peers' && args.length === 0) {
      answer = peers(helia.libp2p)
    } else if (cmd === 'quit' && args.length === 0) {
      return [{ ok: true }, false]
    } else {
      const usage = 'connect MULTIADDR | add PATH | get CID OUTPATH [TIMEOUT] | peers | quit'
      return [{ ok: false, error: `bad command; expected ${usage}` }, true]
    }
    return [{ ok: true, ...answer }, true]
  } catch (err) {
    return [{ ok: false, error: `${err?.name ?? 'Error'}: ${err?.message ?? err}` }, true]
  }
}

async function main () {
  const workdir = await mkdtemp(join(tmpdir(), 'helia-node-'))
  let node
  const cleanUp = async () => {
    try {
      await node?.helia.stop()
      await node?.blockstore.close()
    } finally {
      await rm(workdir, { recursive: true, force: true })
    }
  }
  for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP']) {
    process.once(sig, () => { cleanUp().finally(() => process.exit(0)) })
  }
  try {
    node = await startHelia(workdir)
    reply(hello(node.helia.libp2p))
  } catch (err) {
    reply({ error: String(err?.stack ?? err) })
    await cleanUp().catch(() => {})
    process.exit(1)
  }
  const fs = unixfs(node.helia)
  const lines = createInterface({ input: process.stdin, crlfDelay: Infinity })
  for await (const line of lines) {
    const [answer, goOn] = await handle(node.helia, fs, line)
    if (!goOn) {
      await cleanUp()
      reply(answer)
      process.exit(0)
    }
    if (answer !== null) reply(answer)
  }
  await cleanUp()
  process.exit(0)
}

main().catch((err) => {
  process.stderr.write(`helia_node: ${err?.stack ?? err}\n`)
  process.exit(1)
})
