#!/usr/bin/env node
// Print the CID that Helia's UnixFS importer (@helia/unixfs) computes for a file.
//
//   node tests/interop/helia_cid.mjs FILE [--cid-version 0|1]
//
// Settings match kubo's `ipfs add` defaults: fixed-size 262144-byte chunks,
// balanced layout with at most 174 links per node, sha2-256.
//   --cid-version 0: CIDv0, dag-pb (UnixFS "file") leaves  == `ipfs add`
//   --cid-version 1: CIDv1, raw leaves (the default here)  == `ipfs add --cid-version=1`
//
// No Helia node and no libp2p are created: `unixfs()` is given only an
// in-memory blockstore, so this opens no socket at all. FILE is read as a
// stream. The CID goes to stdout alone on one line; errors go to stderr with
// exit status 1 (2 for bad usage).

import './node20.mjs'

const { createReadStream } = await import('node:fs')
const { stat } = await import('node:fs/promises')
const { unixfs } = await import('@helia/unixfs')
const { MemoryBlockstore } = await import('blockstore-core/memory')
const { fixedSize } = await import('ipfs-unixfs-importer/chunker')
const { balanced } = await import('ipfs-unixfs-importer/layout')

const CHUNK_SIZE = 262144
const MAX_CHILDREN_PER_NODE = 174

function usage (msg) {
  if (msg) process.stderr.write(`helia_cid: ${msg}\n`)
  process.stderr.write('usage: helia_cid.mjs FILE [--cid-version 0|1]\n')
  process.exit(2)
}

function parseArgs (argv) {
  let file
  let cidVersion = 1
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (a === '--cid-version' || a.startsWith('--cid-version=')) {
      const v = a.includes('=') ? a.slice(a.indexOf('=') + 1) : argv[++i]
      if (v !== '0' && v !== '1') usage(`--cid-version must be 0 or 1, got ${v}`)
      cidVersion = Number(v)
    } else if (a === '-h' || a === '--help') {
      usage()
    } else if (a.startsWith('--') && a !== '--') {
      usage(`unknown option ${a}`)
    } else if (file === undefined) {
      file = a === '--' ? argv[++i] : a
    } else {
      usage(`unexpected argument ${a}`)
    }
  }
  if (file === undefined) usage('missing FILE')
  return { file, cidVersion }
}

async function main () {
  const { file, cidVersion } = parseArgs(process.argv.slice(2))
  const st = await stat(file)
  if (!st.isFile()) throw new Error(`${file} is not a regular file`)

  const fs = unixfs({ blockstore: new MemoryBlockstore() })
  const cid = await fs.addByteStream(
    createReadStream(file, { highWaterMark: 1024 * 1024 }),
    {
      cidVersion,
      rawLeaves: cidVersion === 1,
      chunker: fixedSize({ chunkSize: CHUNK_SIZE }),
      layout: balanced({ maxChildrenPerNode: MAX_CHILDREN_PER_NODE }),
      reduceSingleLeafToSelf: true
    }
  )
  process.stdout.write(`${cid.toString()}\n`)
}

main().catch((err) => {
  process.stderr.write(`helia_cid: ${err?.stack ?? err}\n`)
  process.exit(1)
})
