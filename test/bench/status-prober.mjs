// The status and list calls a kubelet makes on every relist, timed while another client drives
// a lifecycle load: a lean CRI caller in a process of its own (answers kept as bytes, requests
// encoded by hand), so the measuring client's event loop is neither the load's nor vitest's.
//   node status-prober.mjs SOCKET PACE_MS POD_ID CONTAINER_ID IMAGE_REF
// Calls PodSandboxStatus, ContainerStatus, ListPodSandbox, ListContainers, ImageStatus and
// ListImages in turn, one call every PACE_MS, until its stdin closes; then prints
// {"<method>": [ms, ...], ...} and exits.
import grpc from "@grpc/grpc-js";

const [socket, pace, podId, containerId, imageRef] = process.argv.slice(2);
const client = new grpc.Client(`unix://${socket}`, grpc.credentials.createInsecure(), {
  "grpc.max_receive_message_length": 16 << 20,
  "grpc-node.flow_control_window": 16 << 20,
});

function varint(n) {
  const out = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return Buffer.from(out);
}
/** Field 1, length-delimited (a string or a message). */
const field1 = (bytes) => Buffer.concat([Buffer.from([0x0a]), varint(bytes.length), bytes]);

const calls = [
  ["RuntimeService", "PodSandboxStatus", field1(Buffer.from(podId))],
  ["RuntimeService", "ContainerStatus", field1(Buffer.from(containerId))],
  ["RuntimeService", "ListPodSandbox", Buffer.alloc(0)],
  ["RuntimeService", "ListContainers", Buffer.alloc(0)],
  ["ImageService", "ImageStatus", field1(field1(Buffer.from(imageRef)))],
  ["ImageService", "ListImages", Buffer.alloc(0)],
];
const call = ([service, method, request]) =>
  new Promise((resolve, reject) =>
    client.makeUnaryRequest(`/runtime.v1.${service}/${method}`, (b) => b, (b) => b, request, { deadline: Date.now() + 60_000 }, (err, res) => (err ? reject(err) : resolve(res))),
  );

let stopping = false;
process.stdin.on("end", () => (stopping = true));
process.stdin.on("close", () => (stopping = true));
process.stdin.resume();

for (const c of calls) await call(c);
const times = Object.fromEntries(calls.map(([, m]) => [m, []]));
for (let i = 0; !stopping; i++) {
  const c = calls[i % calls.length];
  const t = performance.now();
  await call(c);
  const took = performance.now() - t;
  times[c[1]].push(Math.round(took * 100) / 100);
  if (Number(pace) > took) await new Promise((r) => setTimeout(r, Number(pace) - took));
}
process.stdout.write(JSON.stringify(times));
client.close();
