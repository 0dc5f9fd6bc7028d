// A serverprep client in Node.js, as another team's service would write it: @grpc/grpc-js and
// @grpc/proto-loader over the repository's proto/ tree and nothing else (the well-known types
// come with protobufjs). It registers a server, prepares it, follows its log to the end, reads
// its status, then provokes errors and decodes their google.rpc.Status details from the
// grpc-status-details-bin trailer. Every fact is printed as one JSON line; the Python test
// (tests/service/test_node_client.py) checks them.
//
//   node client.js CONFIG.json
//   CONFIG: {"address": "127.0.0.1:50051", "proto_root": ".../proto", "server": {"name", "host",
//            "port", "user", "private_key", "host_key"}}  (a file, so the key is not in argv or env)
"use strict";

const fs = require("node:fs");
const path = require("node:path");
const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");
const protobuf = require("protobufjs");

const DEADLINE_MS = 30_000;
const STREAM_DEADLINE_MS = 120_000;
const API_FILES = ["serverprep/v1/servers.proto", "serverprep/v1/preparations.proto"];
const STATUS_FILES = ["google/rpc/status.proto", "google/rpc/error_details.proto"];

function emit(event, fields) {
  process.stdout.write(JSON.stringify({ event, ...fields }) + "\n");
}

function loadApi(protoRoot) {
  const definition = protoLoader.loadSync(API_FILES, {
    includeDirs: [protoRoot],
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  return grpc.loadPackageDefinition(definition).serverprep.v1;
}

function loadStatusTypes(protoRoot) {
  const root = new protobuf.Root();
  // Only proto/ is searched; google/protobuf/* resolve to protobufjs' bundled well-known types.
  root.resolvePath = (_origin, target) => path.join(protoRoot, target);
  root.loadSync(STATUS_FILES, { keepCase: true });
  return root;
}

function unary(client, method, request) {
  return new Promise((resolve, reject) => {
    client[method](request, { deadline: Date.now() + DEADLINE_MS }, (error, response) =>
      error ? reject(error) : resolve(response),
    );
  });
}

function streamLogs(client, request) {
  return new Promise((resolve, reject) => {
    const messages = [];
    const call = client.StreamLogs(request, { deadline: Date.now() + STREAM_DEADLINE_MS });
    call.on("data", (message) => messages.push(message));
    call.on("error", reject);
    call.on("end", () => resolve(messages));
  });
}

// The rich error model: google.rpc.Status in the binary trailer, its details as Any.
function decodeError(error, types) {
  const raw = error.metadata && error.metadata.get("grpc-status-details-bin")[0];
  const result = { code: error.code, code_name: grpc.status[error.code], message: error.details };
  if (!raw) return { ...result, details: null };
  const Status = types.lookupType("google.rpc.Status");
  const status = Status.decode(raw);
  result.status_code = status.code;
  result.details = status.details.map((any) => {
    const typeName = any.type_url.slice(any.type_url.lastIndexOf("/") + 1);
    const Type = types.lookupType(typeName);
    return { type: typeName, ...Type.toObject(Type.decode(any.value), { defaults: true, arrays: true, objects: true }) };
  });
  return result;
}

async function expectError(name, promise, types) {
  try {
    const response = await promise;
    emit("unexpected_success", { call: name, response });
    process.exitCode = 1;
  } catch (error) {
    if (error.code === undefined) throw error;
    emit("error", { call: name, ...decodeError(error, types) });
  }
}

async function main() {
  const configPath = process.argv[2];
  if (!configPath) throw new Error("usage: node client.js CONFIG.json");
  const config = JSON.parse(fs.readFileSync(configPath, "utf8"));
  const api = loadApi(config.proto_root);
  const types = loadStatusTypes(config.proto_root);
  const credentials = grpc.credentials.createInsecure();
  const servers = new api.ServerService(config.address, credentials);
  const preparations = new api.PreparationService(config.address, credentials);
  const target = config.server;

  const created = await unary(servers, "CreateServer", {
    name: target.name,
    host: target.host,
    port: target.port,
    user: target.user,
    credentials: { private_key: target.private_key },
    host_key: target.host_key,
  });
  emit("created", {
    name: created.server.name,
    host_key_fingerprint: created.server.host_key_fingerprint,
    has_private_key: created.server.has_private_key,
    returned_fields: Object.keys(created.server).sort(),
  });

  const request = { server: target.name, options: { docker_source: "DOCKER_SOURCE_DISTRO" }, request_id: "node-1" };
  const prepared = (await unary(preparations, "Prepare", request)).preparation;
  emit("prepared", { id: prepared.id, state: prepared.state, docker_source: prepared.options.docker_source });
  const again = (await unary(preparations, "Prepare", request)).preparation;
  emit("prepared_again", { id: again.id });

  const messages = await streamLogs(preparations, { server: target.name, preparation_id: prepared.id });
  const entries = messages.flatMap((m) => m.entries);
  emit("logs", {
    messages: messages.length,
    seqs: entries.map((e) => Number(e.seq)),
    final_state: messages.length ? messages[messages.length - 1].preparation_state : null,
    step_transitions: entries.filter((e) => e.step_state !== "STEP_STATE_UNSPECIFIED").map((e) => [e.step, e.step_state]),
    streams: [...new Set(entries.map((e) => e.stream))].sort(),
  });

  const status = (await unary(preparations, "Status", { server: target.name })).preparation;
  emit("status", {
    id: status.id,
    state: status.state,
    steps: status.steps.map((s) => [s.name, s.state]),
    operating_system: status.operating_system,
    last_seq: Number(status.last_seq),
  });

  await expectError("Prepare unknown server", unary(preparations, "Prepare", { server: "no-such-server" }), types);
  await expectError("CreateServer existing", unary(servers, "CreateServer", {
    name: target.name, host: target.host, user: target.user,
    credentials: { private_key: target.private_key }, host_key: target.host_key,
  }), types);
  await expectError("CreateServer invalid", unary(servers, "CreateServer", { name: "not a name!", port: 70000 }), types);

  servers.close();
  preparations.close();
  emit("done", {});
}

main().catch((error) => {
  emit("fatal", { message: String(error && error.stack ? error.stack : error), code: error && error.code });
  process.exitCode = 2;
});
