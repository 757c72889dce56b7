// ipx for bench/thumbor_compare.py: a node cluster of N worker processes, each one createIPX
// (file storage, ipx's defaults) behind ipx's own node listener, as `ipx serve` runs it.
//
// Usage: node bench/ipx_server.cjs PREFIX DIR PORT PROCESSES
//   PREFIX: where `npm install --prefix` put ipx (var/bench/ipx); DIR: the folder of origin files.
// Not `ipx serve` itself: that is one process, and the other servers of the bench get two.

"use strict";

const cluster = require("node:cluster");
const http = require("node:http");
const path = require("node:path");
const { createRequire } = require("node:module");

const [prefix, dir, port, processes] = process.argv.slice(2);

if (cluster.isPrimary) {
  for (let i = 0; i < Number(processes); i++) {
    cluster.fork();
  }
  // A worker that dies is not replaced: the bench would rather fail than measure a restart.
  cluster.on("exit", (worker, code, signal) => {
    console.error(`ipx worker ${worker.process.pid} exited (${signal || code})`);
    process.exit(1);
  });
  process.on("SIGTERM", () => {
    for (const worker of Object.values(cluster.workers)) {
      worker.process.kill("SIGTERM");
    }
    process.exit(0);
  });
} else {
  const ipxRequire = createRequire(path.join(path.resolve(prefix), "node_modules", "ipx", "package.json"));
  const { createIPX, createIPXNodeServer, ipxFSStorage } = ipxRequire("ipx");
  const ipx = createIPX({ storage: ipxFSStorage({ dir: path.resolve(dir) }) });
  http.createServer(createIPXNodeServer(ipx)).listen(Number(port), "127.0.0.1");
}
