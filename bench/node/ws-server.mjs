// The Node.js `ws` comparator: the floor's operations (see ../src/floor.rs) on ws 8.
//
//   node ws-server.mjs [--port N] [--stop-when-stdin-closes]
//
// Every connection (any path) is a WebSocket. A frame whose first byte is `B` goes to every
// connection (the sender too); any other frame goes back to its sender. The generator's raw
// mode sends binary frames `[op, ticks u64 LE, payload]`, op `E` (echo) or `B` (broadcast).
// Listens on 127.0.0.1 and prints `Now listening on: http://127.0.0.1:<port>` once it accepts.
import { WebSocketServer } from "ws";

const BROADCAST = 0x42; // 'B'

function parseArgs(argv) {
  const args = { port: 0, stopWhenStdinCloses: false };
  for (let i = 0; i < argv.length; i++) {
    switch (argv[i]) {
      case "--port":
        args.port = Number(argv[++i]);
        break;
      case "--stop-when-stdin-closes":
        args.stopWhenStdinCloses = true;
        break;
      default:
        console.error("usage: node ws-server.mjs [--port N] [--stop-when-stdin-closes]");
        process.exit(2);
    }
  }
  return args;
}

const args = parseArgs(process.argv.slice(2));
// no compression (the default of a ws server), messages up to 1 MiB like the generator
const wss = new WebSocketServer({ host: "127.0.0.1", port: args.port, maxPayload: 1 << 20 });

wss.on("connection", (ws, req) => {
  req.socket.setNoDelay(true);
  ws.on("error", () => {});
  ws.on("message", (data, isBinary) => {
    if (data.length > 0 && data[0] === BROADCAST) {
      for (const client of wss.clients) {
        if (client.readyState === 1) client.send(data, { binary: isBinary });
      }
    } else {
      ws.send(data, { binary: isBinary });
    }
  });
});

wss.on("listening", () => {
  console.log(`Now listening on: http://127.0.0.1:${wss.address().port}`);
});

wss.on("error", (err) => {
  console.error(`ws-server: ${err.message}`);
  process.exit(1);
});

if (args.stopWhenStdinCloses) {
  process.stdin.on("end", () => process.exit(0));
  process.stdin.on("error", () => process.exit(0));
  process.stdin.resume();
}
