// The Node.js socket.io 4 comparator, answering the same events as socketioxide-server
// (see ../src/bin/socketioxide-server.rs).
//
//   node socketio-server.mjs [--port N] [--stop-when-stdin-closes]
//
// Events on the main namespace, arguments (ticks, payload): a number and a string:
//   echo      -> `echo` emitted back to the sender with the same arguments
//   broadcast -> `measure` emitted to every socket (the sender too)
// WebSocket transport only, no compression, socket.io's defaults otherwise (ping every 25 s).
// Listens on 127.0.0.1 and prints `Now listening on: http://127.0.0.1:<port>` once it accepts.
import { createServer } from "node:http";
import { Server } from "socket.io";

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
        console.error("usage: node socketio-server.mjs [--port N] [--stop-when-stdin-closes]");
        process.exit(2);
    }
  }
  return args;
}

const args = parseArgs(process.argv.slice(2));
const http = createServer();
const io = new Server(http, {
  transports: ["websocket"],
  perMessageDeflate: false,
  serveClient: false,
});

io.on("connection", (socket) => {
  socket.on("echo", (ticks, payload) => {
    socket.emit("echo", ticks, payload);
  });
  socket.on("broadcast", (ticks, payload) => {
    io.emit("measure", ticks, payload);
  });
});

http.on("connection", (tcp) => tcp.setNoDelay(true));
http.on("error", (err) => {
  console.error(`socketio-server: ${err.message}`);
  process.exit(1);
});
http.listen(args.port, "127.0.0.1", () => {
  console.log(`Now listening on: http://127.0.0.1:${http.address().port}`);
});

if (args.stopWhenStdinCloses) {
  process.stdin.on("end", () => process.exit(0));
  process.stdin.on("error", () => process.exit(0));
  process.stdin.resume();
}
