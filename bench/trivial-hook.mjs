// The harness's own floor for the ack phase: a node:http server that reads each request and
// answers 202 with a body shaped like signet's, doing nothing else. bench/bench.ts runs the same
// open-loop generator against it in the same run, so the table shows what the generator, node's
// HTTP stack and the shared cores add before signet does anything. Prints its port, then serves
// until killed.
import http from 'node:http';

const server = http.createServer((req, res) => {
  let size = 0;
  req.on('data', (d) => (size += d.length));
  req.on('end', () => {
    const text = JSON.stringify({
      requestId: 'trivial',
      queued: [{ ref: `received ${size} bytes`, job: '0123456789abcdef0123456789abcdef01234567' }],
      ignored: [],
    });
    res.writeHead(202, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  });
});
server.keepAliveTimeout = 30_000;
server.listen(0, '127.0.0.1', () => process.stdout.write(`${server.address().port}\n`));
process.on('SIGTERM', () => process.exit(0));
