// Node 20 lacks Promise.withResolvers (Node 22+), which parts of the Helia and libp2p dependency
// trees use. Imported first by the scripts here.
if (typeof Promise.withResolvers !== 'function') {
  Promise.withResolvers = function withResolvers () {
    let resolve
    let reject
    const promise = new Promise((res, rej) => { resolve = res; reject = rej })
    return { promise, resolve, reject }
  }
}
