// A lean CRI caller for latency benchmarks, run as its own process so the measuring client's
// garbage collection and event loop are not the vitest worker's. Answers stay bytes (a Go
// client such as the kubelet decodes them in a fraction of what protobufjs needs), and the
// HTTP/2 flow-control window starts at 16 MiB, where a Go client's BDP estimator quickly takes
// it, instead of Node's 64 KiB that makes every large answer wait for window updates.
//   node wire-client.mjs SOCKET METHOD N PACE_MS [CONTAINER_ID,...]
// Prints {"p50":..,"p90":..,"p99":..,"max":..,"rate":..} in milliseconds.
import grpc from "@grpc/grpc-js";

const [socket, method, n, pace, ids] = process.argv.slice(2);
const client = new grpc.Client(`unix://${socket}`, grpc.credentials.createInsecure(), {
  "grpc.max_receive_message_length": 16 << 20,
  "grpc-node.flow_control_window": 16 << 20,
});
const idList = ids ? ids.split(",") : [];
// ContainerStatusRequest { string container_id = 1; }, encoded by hand.
const request = (i) => {
  if (idList.length === 0) return Buffer.alloc(0);
  const id = Buffer.from(idList[i % idList.length]);
  return Buffer.concat([Buffer.from([0x0a, id.length]), id]);
};
const call = (i) =>
  new Promise((resolve, reject) =>
    client.makeUnaryRequest(`/runtime.v1.RuntimeService/${method}`, (b) => b, (b) => b, request(i), { deadline: Date.now() + 60_000 }, (err, res) => (err ? reject(err) : resolve(res))),
  );

for (let i = 0; i < 20; i++) await call(i);
const times = [];
const started = performance.now();
for (let i = 0; i < Number(n); i++) {
  const t = performance.now();
  await call(i);
  const took = performance.now() - t;
  times.push(took);
  if (Number(pace) > took) await new Promise((r) => setTimeout(r, Number(pace) - took));
}
const total = performance.now() - started;
times.sort((a, b) => a - b);
const at = (q) => Math.round(times[Math.min(times.length - 1, Math.floor(q * times.length))] * 100) / 100;
console.log(JSON.stringify({ p50: at(0.5), p90: at(0.9), p99: at(0.99), max: at(1), rate: Math.round((times.length / total) * 1000) }));
client.close();
