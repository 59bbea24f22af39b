// Runs inside the browser page, not in Node. test/conformance.test.mjs injects
// it with page.addScriptTag after the official bundles (signalr.min.js and, for
// MessagePack, signalr-protocol-msgpack.min.js), then drives the scenarios
// through `window.harness` with page.evaluate.
//
// Every wait here is bounded: page.evaluate itself has no timeout, so a promise
// that never settles would otherwise hang the test until node:test gives up.
//
// Each connection has a name chosen by the test and a log of what the server
// called on it: [method, ...args] in arrival order, plus ["(closed)", error]
// when the connection closes.

(() => {
  "use strict";

  // Every client method the conformance server's hubs may call. All are
  // registered on every connection so that a call arriving on the wrong
  // connection is recorded (and not just logged as "No client method ...").
  const CLIENT_METHODS = [
    "Message",
    "CustomObject",
    "StreamCanceled",
    "Send",
    "GroupMessage",
    "UserMessage",
    "Direct",
    "Measure",
  ];

  const connections = new Map();
  const logs = new Map();

  function get(name) {
    const c = connections.get(name);
    if (!c) throw new Error(`no connection named ${name}`);
    return c;
  }

  function withTimeout(promise, ms, what) {
    let timer;
    return Promise.race([
      promise,
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
      }),
    ]).finally(() => clearTimeout(timer));
  }

  function describeError(err) {
    return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  }

  window.harness = {
    /** Which globals the injected bundles defined. */
    globals() {
      return {
        signalR: typeof window.signalR,
        HubConnectionBuilder: typeof window.signalR?.HubConnectionBuilder,
        MessagePackHubProtocol: typeof window.signalR?.protocols?.msgpack?.MessagePackHubProtocol,
      };
    },

    /**
     * Builds and starts a connection to `path` (relative to this page, so the
     * same origin) with protocol "json" or "messagepack" and, when given, one
     * transport ("WebSockets", "ServerSentEvents", "LongPolling"); without it
     * the client negotiates its default (WebSockets in a browser).
     * Resolves to { connectionId, state, protocol } once started.
     */
    async connect({ name, path, protocol, transport, timeoutMs }) {
      if (connections.has(name)) throw new Error(`connection ${name} exists already`);
      const url = new URL(path, location.href).href;
      const options = {};
      if (transport) {
        const t = signalR.HttpTransportType[transport];
        if (typeof t !== "number") throw new Error(`unknown transport ${transport}`);
        options.transport = t;
      }
      const builder = new signalR.HubConnectionBuilder()
        .withUrl(url, options)
        // Warnings and errors go to the console, where the test collects them.
        .configureLogging(signalR.LogLevel.Warning);
      let hubProtocol;
      if (protocol === "messagepack") {
        hubProtocol = new signalR.protocols.msgpack.MessagePackHubProtocol();
        builder.withHubProtocol(hubProtocol);
      } else if (protocol === "json") {
        hubProtocol = new signalR.JsonHubProtocol();
        builder.withHubProtocol(hubProtocol);
      } else {
        throw new Error(`unknown protocol ${protocol}`);
      }
      const connection = builder.build();
      const log = [];
      // The handlers return nothing: a returned value would be taken as a
      // client result, which the server did not ask for.
      for (const method of CLIENT_METHODS) {
        connection.on(method, (...args) => {
          log.push([method, ...args]);
        });
      }
      connection.onclose((err) => {
        log.push(["(closed)", err ? describeError(err) : null]);
      });
      connections.set(name, connection);
      logs.set(name, log);
      await withTimeout(connection.start(), timeoutMs, `start of ${name} (${path})`);
      return { connectionId: connection.connectionId, state: connection.state, protocol: hubProtocol.name };
    },

    state(name) {
      return get(name).state;
    },

    /** connection.invoke with a bounded wait; rejects with the server's error text. */
    invoke({ name, method, args, timeoutMs }) {
      return withTimeout(get(name).invoke(method, ...args), timeoutMs, `invoke ${method} on ${name}`);
    },

    /**
     * Subscribes to a server stream and resolves to { items, completed, error }
     * once it completes or fails.
     */
    stream({ name, method, args, timeoutMs }) {
      const items = [];
      const done = new Promise((resolve) => {
        get(name)
          .stream(method, ...args)
          .subscribe({
            next: (item) => items.push(item),
            complete: () => resolve({ items, completed: true, error: null }),
            error: (err) => resolve({ items, completed: false, error: describeError(err) }),
          });
      });
      return withTimeout(done, timeoutMs, `stream ${method} on ${name} (items so far: ${JSON.stringify(items)})`);
    },

    /** A copy of what the server has called on this connection so far. */
    log(name) {
      get(name);
      return logs.get(name).slice();
    },

    /** Forgets the log of every connection (the start of a scenario). */
    clearLogs() {
      for (const log of logs.values()) log.length = 0;
    },

    /**
     * Resolves to the log once it has at least `count` entries; rejects after
     * timeoutMs with what did arrive.
     */
    async waitForLog({ name, count, timeoutMs }) {
      get(name);
      const log = logs.get(name);
      const deadline = performance.now() + timeoutMs;
      while (log.length < count) {
        if (performance.now() > deadline) {
          throw new Error(
            `${name} received ${log.length} of ${count} expected calls within ${timeoutMs} ms: ${JSON.stringify(log)}`,
          );
        }
        await new Promise((r) => setTimeout(r, 20));
      }
      return log.slice();
    },

    /** Stops the connection; resolves to its state and log afterwards. */
    async stop({ name, timeoutMs }) {
      const connection = get(name);
      await withTimeout(connection.stop(), timeoutMs, `stop of ${name}`);
      return { state: connection.state, log: logs.get(name).slice() };
    },
  };
})();
