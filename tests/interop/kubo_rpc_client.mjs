#!/usr/bin/env node
// Drives an RPC endpoint with kubo's official JS client, kubo-rpc-client 7.1:
//
//   node tests/interop/kubo_rpc_client.mjs RPC_URL FILE
//
// It calls id, add (CIDv1 with raw leaves; then with the client's defaults; then a named file),
// cat, block.get, swarm.peers, routing.findProvs and routing.provide, then two calls that must
// fail, and prints one JSON line:
//
//   {"ok": true, "peer_id": "12D3Koo...", "public_key": "CAES..." or null,
//    "public_key_matches_id": true, "addresses": [...], "agent_version": "...",
//    "protocols": [...], "cid": "bafy...", "cid_version": 1, "added_size": N,
//    "added_path": "...", "default_add": {"cid": "...", "version": V},
//    "named_add": {"path": "...", "cid": "..."}, "cat_sha256": "hex", "cat_length": N,
//    "block_length": N, "block_sha256": "hex", "swarm_peers": [{"peer", "addr"}...],
//    "findprovs": {"events": [NAME...], "providers": [ID...]},
//    "provide": {"events": [NAME...]},
//    "errors": {"missing_block": "message", "cid_version_0": "message"}}
//
// The sizes are those the client reports; the hashes are sha256 of the bytes it returned.
// `errors` holds the messages the client raised for a block the node lacks and for an add
// asking for CIDv0 (null if the call succeeded). A failure of any other call prints
// {"ok": false, "call": "<the call>", "error": "..."} and exits with status 1.
// The URL must point to 127.0.0.1: nothing else is contacted.

import './node20.mjs'

// stdout carries the result alone: anything a dependency logs goes to stderr.
console.log = console.error
console.info = console.error

const { createHash } = await import('node:crypto')
const { readFile } = await import('node:fs/promises')

const [url, file] = process.argv.slice(2)
if (url == null || file == null) {
  process.stderr.write('usage: node kubo_rpc_client.mjs RPC_URL FILE\n')
  process.exit(2)
}

function fail (call, error) {
  const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error)
  process.stdout.write(JSON.stringify({ ok: false, call, error: message }) + '\n')
  process.exit(1)
}

// Each call is named, so that a failure says which one broke.
async function step (call, work) {
  try {
    return await work()
  } catch (error) {
    fail(call, error)
  }
}

const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex')

const { create } = await step('import kubo-rpc-client', () => import('kubo-rpc-client'))
const { publicKeyFromProtobuf } = await import('@libp2p/crypto/keys')
const { peerIdFromPublicKey } = await import('@libp2p/peer-id')
const client = create({ url, timeout: '60s' })
const content = await step('read FILE', () => readFile(file))

const id = await step('id()', () => client.id())
const added = await step('add(content, {cidVersion: 1, rawLeaves: true})',
  () => client.add(content, { cidVersion: 1, rawLeaves: true }))
// kubo's defaults (CIDv0, no raw leaves for a file of one chunk or more): what the server
// does with options it does not honour shows here.
const plain = await step('add(content)', () => client.add(content))
const cid = added.cid
const named = await step("add({path: 'peerix interop.txt', content})",
  () => client.add({ path: 'peerix interop.txt', content: 'kubo-rpc-client against Peerix\n' },
    { cidVersion: 1 }))

const catBytes = await step('cat(cid)', async () => {
  const chunks = []
  for await (const chunk of client.cat(cid)) {
    chunks.push(chunk)
  }
  return Buffer.concat(chunks)
})
const block = await step('block.get(cid)', () => client.block.get(cid))
const peers = await step('swarm.peers()', () => client.swarm.peers())

const findprovs = await step('routing.findProvs(cid)', async () => {
  const events = []
  const providers = []
  for await (const event of client.routing.findProvs(cid)) {
    events.push(event.name)
    if (event.name === 'PROVIDER') {
      providers.push(...event.providers.map((p) => p.id.toString()))
    }
  }
  return { events, providers }
})
const provide = await step('routing.provide(cid)', async () => {
  const events = []
  for await (const event of client.routing.provide(cid)) {
    events.push(event.name)
    if (event.name === 'QUERY_ERROR') {
      throw event.error
    }
  }
  return { events }
})

// Calls that must fail: what matters is the message the client extracts from the answer.
async function failure (work) {
  try {
    await work()
    return null
  } catch (error) {
    return error.message
  }
}
const absent = 'bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku'
const errors = {
  missing_block: await failure(() => client.block.get(absent)),
  cid_version_0: await failure(() => client.add(content, { cidVersion: 0 }))
}

// kubo's PublicKey is the protobuf-encoded key the peer id is derived from.
const publicKeyMatches = id.publicKey == null
  ? null
  : peerIdFromPublicKey(publicKeyFromProtobuf(Buffer.from(id.publicKey, 'base64')))
    .equals(id.id)

const result = {
  ok: true,
  peer_id: id.id.toString(),
  public_key: id.publicKey ?? null,
  public_key_matches_id: publicKeyMatches,
  addresses: (id.addresses ?? []).map(String),
  agent_version: id.agentVersion ?? null,
  protocols: id.protocols ?? null,
  cid: cid.toString(),
  cid_version: cid.version,
  added_size: added.size,
  added_path: added.path,
  default_add: { cid: plain.cid.toString(), version: plain.cid.version },
  named_add: { path: named.path, cid: named.cid.toString() },
  cat_sha256: sha256(catBytes),
  cat_length: catBytes.length,
  block_length: block.length,
  block_sha256: sha256(block),
  swarm_peers: peers.map((p) => ({ peer: p.peer.toString(), addr: p.addr.toString() })),
  findprovs,
  provide,
  errors
}
process.stdout.write(JSON.stringify(result) + '\n')
// The client keeps HTTP connections alive: leave without waiting for them.
process.exit(0)
