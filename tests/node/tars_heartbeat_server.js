// A Tars service for tarsdock's end-to-end tests that talks to its node the way a Tars runtime
// (TarsCpp's Application and ServantHandle) does, with the Tars project's own codec: @tars/stream,
// and @tars/rpc's RequestPacket/ResponsePacket.
//
//   node tars_heartbeat_server.js --config=CONF      (or TARS_CONFIG=CONF)
//
// From CONF's <tars><application><server>: `node` (the node object), `local` (its admin
// endpoint), app, server, and the adapters (sub-domains with an endpoint).
// - At start: reportVersion(app, server, VERSION) and keepAlive with no adapter, to `node`.
// - Every BEAT_MS (env, default 10000 as TarsCpp): keepAlive for each adapter and AdminAdapter.
//   NO_HEARTBEAT=1 sends nothing at all (a service that is no Tars runtime).
// - Serves AdminF as AdminObj on `local`: notify(cmd) answers "TARSDOCK-TEST <App.Server> <cmd>",
//   shutdown() answers and exits 0 (printing "shutdown by AdminF"; with SHUTDOWN_IGNORED=1 it
//   prints "shutdown ignored" and stays: a service slow to leave), getPid() answers its pid.
// - Prints "SIGTERM" on SIGTERM and exits 0; prints "SIGHUP" on SIGHUP and keeps running.
// - Listens on each adapter's endpoint (accepting, answering nothing) so the ports are real.
"use strict";
const fs = require("fs");
const net = require("net");
const TarsStream = require("@tars/stream");
const { tars: Packets } = require("@tars/rpc/core/rpc-tars/RequestF.js");

const VERSION = "tarsdock-e2e-1.0";
// synchronous: a line written just before process.exit must not be lost in a pipe
const say = (text) => fs.writeSync(1, text + "\n");
const BEAT_MS = Number(process.env.BEAT_MS || 10000);

function readServerDomain(path) {
    const server = { adapters: {} };
    const stack = [];
    for (const raw of fs.readFileSync(path, "utf8").split("\n")) {
        const line = raw.trim();
        if (!line || line.startsWith("#")) continue;
        if (line.startsWith("</")) { stack.pop(); continue; }
        if (line.startsWith("<")) { stack.push(line.slice(1, line.indexOf(">"))); continue; }
        const eq = line.indexOf("=");
        const key = eq < 0 ? line : line.slice(0, eq).trim();
        const value = eq < 0 ? "" : line.slice(eq + 1).trim();
        const where = stack.join("/");
        if (where === "tars/application/server") server[key] = value;
        if (stack.length === 4 && where.startsWith("tars/application/server/") && key === "endpoint") {
            server.adapters[stack[3]] = value;
        }
    }
    return server;
}

function endpoint(text) {
    const words = text.split(/\s+/);
    return { host: words[words.indexOf("-h") + 1], port: Number(words[words.indexOf("-p") + 1]) };
}

function frame(packet) {
    const os = new TarsStream.TarsOutputStream();
    packet._writeTo(os);
    const body = os.getBinBuffer().toNodeBuffer();
    const head = Buffer.alloc(4);
    head.writeUInt32BE(body.length + 4);
    return Buffer.concat([head, body]);
}

// Calls a peer's packets out of a byte stream, one callback per whole frame body.
function frames(onBody) {
    let pending = Buffer.alloc(0);
    return (chunk) => {
        pending = Buffer.concat([pending, chunk]);
        while (pending.length >= 4 && pending.length >= pending.readUInt32BE(0)) {
            const length = pending.readUInt32BE(0);
            onBody(pending.subarray(4, length));
            pending = pending.subarray(length);
        }
    };
}

const config = (process.argv.find((a) => a.startsWith("--config=")) || "").slice(9)
    || process.env.TARS_CONFIG;
const server = readServerDomain(config);
const serviceName = `${server.app}.${server.server}`;
let requestId = 0;
let nodeSocket = null;

function nodeCall(func, writeArgs) {
    if (!server.node) return;
    if (!nodeSocket || nodeSocket.destroyed) {
        const ep = endpoint(server.node.slice(server.node.indexOf("@") + 1));
        nodeSocket = net.connect(ep.port, ep.host);
        nodeSocket.on("error", (e) => say(`node object: ${e.message}`));
        nodeSocket.on("data", frames(() => {}));
    }
    const args = new TarsStream.TarsOutputStream();
    writeArgs(args);
    const request = new Packets.RequestPacket();
    request.iVersion = 1;
    request.iRequestId = ++requestId;
    request.sServantName = "tars.tarsnode.ServerObj";
    request.sFuncName = func;
    request.sBuffer = args.getBinBuffer();
    request.iTimeout = 60000;
    nodeSocket.write(frame(request));
}

function keepAlive(adapter) {
    nodeCall("keepAlive", (os) => {
        // ServerInfo (NodeF.tars): 0 application, 1 serverName, 2 pid, 3 adapter
        os.writeStruct(1, { _writeTo: (s) => {
            s.writeString(0, server.app);
            s.writeString(1, server.server);
            s.writeInt32(2, process.pid);
            s.writeString(3, adapter);
        } });
    });
}

function serveAdmin() {
    const ep = endpoint(server.local);
    net.createServer((sock) => {
        sock.on("error", () => {});
        sock.on("data", frames((body) => {
            const is = new TarsStream.TarsInputStream(new TarsStream.BinBuffer(body));
            const request = Packets.RequestPacket._readFrom(is);
            const out = new TarsStream.TarsOutputStream();
            const args = new TarsStream.TarsInputStream(request.sBuffer);
            if (request.sFuncName === "notify") {
                const command = args.readString(1, true, "");
                say(`AdminF.notify: ${command}`);
                out.writeString(0, `TARSDOCK-TEST ${serviceName} ${command}`);
            } else if (request.sFuncName === "shutdown") {
                say("AdminF.shutdown");
            } else if (request.sFuncName === "getPid") {
                out.writeInt64(0, process.pid);
            }
            const response = new Packets.ResponsePacket();
            response.iVersion = 1;
            response.iRequestId = request.iRequestId;
            response.iRet = ["notify", "shutdown", "getPid"].includes(request.sFuncName) ? 0 : -3;
            response.sBuffer = out.getBinBuffer();
            sock.write(frame(response), () => {
                if (request.sFuncName === "shutdown" && process.env.SHUTDOWN_IGNORED) {
                    say("shutdown ignored");
                } else if (request.sFuncName === "shutdown") {
                    say("shutdown by AdminF");
                    process.exit(0);
                }
            });
        }));
    }).listen(ep.port, ep.host);
}

say(`${serviceName} starting, pid ${process.pid}, node ${server.node || "-"}, ` +
            `local ${server.local || "-"}, heartbeats ${process.env.NO_HEARTBEAT ? "off" : BEAT_MS + " ms"}`);
for (const text of Object.values(server.adapters)) {
    const ep = endpoint(text);
    net.createServer((sock) => sock.on("error", () => {})).listen(ep.port, ep.host);
}
if (server.local) serveAdmin();
if (!process.env.NO_HEARTBEAT) {
    nodeCall("reportVersion", (os) => {
        os.writeString(1, server.app);
        os.writeString(2, server.server);
        os.writeString(3, VERSION);
    });
    keepAlive("");
    setInterval(() => {
        for (const adapter of [...Object.keys(server.adapters), "AdminAdapter"]) keepAlive(adapter);
    }, BEAT_MS);
}
process.on("SIGTERM", () => { say("SIGTERM"); process.exit(0); });
// a signal the supervisor passes on is logged, and the service keeps running
process.on("SIGHUP", () => say("SIGHUP"));
