// podshim's Prometheus instruments, in one registry. Adapters and services record through the
// small functions below (a leaf module: it imports nothing of podshim's), so instrumenting a
// seam is one call and the metric names live in one file, the same list README documents.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

export const registry = new Registry();

// Local calls: sub-millisecond reads to multi-second pulls and pod starts.
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
const PULL_BUCKETS = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];

const criDuration = new Histogram({
  name: "podshim_cri_request_duration_seconds", help: "Latency of CRI calls, by service and method.",
  labelNames: ["service", "method"], buckets: LATENCY_BUCKETS, registers: [registry],
});
const criRequests = new Counter({
  name: "podshim_cri_requests_total", help: "CRI calls answered, by service, method and gRPC status code.",
  labelNames: ["service", "method", "code"], registers: [registry],
});
const stepDuration = new Histogram({
  name: "podshim_operation_step_duration_seconds",
  help: "Time spent in each step of pod start (run_pod_sandbox) and container create/start.",
  labelNames: ["operation", "step"], buckets: LATENCY_BUCKETS, registers: [registry],
});
const containerdDuration = new Histogram({
  name: "podshim_containerd_request_duration_seconds", help: "Latency of calls to containerd, by service and method.",
  labelNames: ["service", "method"], buckets: LATENCY_BUCKETS, registers: [registry],
});
const containerdRequests = new Counter({
  name: "podshim_containerd_requests_total", help: "Calls to containerd, by service, method and gRPC status code.",
  labelNames: ["service", "method", "code"], registers: [registry],
});
const cniDuration = new Histogram({
  name: "podshim_cni_plugin_duration_seconds", help: "Run time of CNI plugin executions, by plugin and command.",
  labelNames: ["plugin", "command"], buckets: LATENCY_BUCKETS, registers: [registry],
});
const cniFailures = new Counter({
  name: "podshim_cni_plugin_failures_total", help: "CNI plugin executions that failed or could not run, by plugin and command.",
  labelNames: ["plugin", "command"], registers: [registry],
});
const pullDuration = new Histogram({
  name: "podshim_image_pull_duration_seconds", help: "Duration of image pulls, by result (success, failure).",
  labelNames: ["result"], buckets: PULL_BUCKETS, registers: [registry],
});
const pullBytes = new Counter({
  name: "podshim_image_pull_bytes_total", help: "Layer bytes downloaded (from registries and peers).", registers: [registry],
});
const pullFailures = new Counter({
  name: "podshim_image_pull_failures_total", help: "Image pulls that failed.", registers: [registry],
});
const pullSourceBytes = new Counter({
  name: "podshim_image_pull_source_bytes_total",
  help: "Bytes pulled (layers, configs and manifests by digest), by source (upstream, peer) and the peer that served them.",
  labelNames: ["source", "peer"], registers: [registry],
});
const peerServedBytes = new Counter({
  name: "podshim_peer_served_bytes_total", help: "Bytes this node's peer mirror served to other nodes, by kind (blobs, manifests).",
  labelNames: ["kind"], registers: [registry],
});
const peerFailures = new Counter({
  name: "podshim_peer_failures_total", help: "Times a peer was set aside, by peer and reason (unreachable, slow, corrupt, error).",
  labelNames: ["peer", "reason"], registers: [registry],
});
const eventsDropped = new Counter({
  name: "podshim_events_dropped_total",
  help: "Container events not delivered because their GetContainerEvents subscriber fell too far behind.", registers: [registry],
});
const recoveryDuration = new Gauge({
  name: "podshim_recovery_duration_seconds", help: "Duration of the last state recovery from containerd.", registers: [registry],
});
const sweptOrphans = new Counter({
  name: "podshim_recovery_swept_orphans_total", help: "Leftovers removed by recovery, by kind.",
  labelNames: ["kind"], registers: [registry],
});

export function observeRpc(service: string, method: string, code: string, seconds: number): void {
  criDuration.observe({ service, method }, seconds);
  criRequests.inc({ service, method, code });
}

export function observeStep(operation: string, step: string, seconds: number): void {
  stepDuration.observe({ operation, step }, seconds);
}

/** Records the steps a StepTimer measured (milliseconds by step). */
export function observeSteps(operation: string, ms: Readonly<Record<string, number>>): void {
  for (const [step, v] of Object.entries(ms)) observeStep(operation, step, v / 1000);
}

export function observeContainerdCall(service: string, method: string, code: string, seconds: number): void {
  containerdDuration.observe({ service, method }, seconds);
  containerdRequests.inc({ service, method, code });
}

export function observeCniExec(plugin: string, command: string, seconds: number, ok: boolean): void {
  cniDuration.observe({ plugin, command }, seconds);
  if (!ok) cniFailures.inc({ plugin, command });
}

export function observePull(seconds: number, ok: boolean): void {
  pullDuration.observe({ result: ok ? "success" : "failure" }, seconds);
  if (!ok) pullFailures.inc();
}

export function countPullBytes(n: number): void {
  pullBytes.inc(n);
}

/** Bytes of a pull by source: "upstream" (peer ""), or "peer" and which one. */
export function countPullSourceBytes(source: "upstream" | "peer", peer: string, n: number): void {
  if (n > 0) pullSourceBytes.inc({ source, peer }, n);
}

export function countPeerServed(kind: string, n: number): void {
  if (n > 0) peerServedBytes.inc({ kind }, n);
}

export function countPeerFailure(peer: string, reason: string): void {
  peerFailures.inc({ peer, reason });
}

export function countEventsDropped(n: number): void {
  if (n > 0) eventsDropped.inc(n);
}

export function observeRecovery(seconds: number): void {
  recoveryDuration.set(seconds);
}

export function countSweptOrphan(kind: string, n = 1): void {
  sweptOrphans.inc({ kind }, n);
}

/** What the gauges read when scraped: counts taken from the services' own indexes. */
export interface StateSource {
  sandboxStates(): Iterable<string>;
  containerStates(): Iterable<string>;
  eventSubscribers(): number;
}

let source: StateSource | undefined;

function countInto(gauge: Gauge, states: Iterable<string>, known: readonly string[]): void {
  const counts = new Map<string, number>(known.map((s) => [s, 0]));
  for (const s of states) counts.set(s, (counts.get(s) ?? 0) + 1);
  gauge.reset();
  for (const [state, n] of counts) gauge.set({ state }, n);
}

new Gauge({
  name: "podshim_sandboxes", help: "Pod sandboxes in podshim's index, by state.", labelNames: ["state"], registers: [registry],
  collect() {
    if (source) countInto(this, source.sandboxStates(), ["ready", "notready"]);
  },
});
new Gauge({
  name: "podshim_containers", help: "Containers in podshim's index, by state.", labelNames: ["state"], registers: [registry],
  collect() {
    if (source) countInto(this, source.containerStates(), ["created", "running", "exited", "unknown"]);
  },
});
new Gauge({
  name: "podshim_events_subscribers", help: "Open GetContainerEvents streams.", registers: [registry],
  collect() {
    this.set(source?.eventSubscribers() ?? 0);
  },
});

export function setStateSource(s: StateSource | undefined): void {
  source = s;
}

let buildInfo: Gauge | undefined;
let processMetrics = false;

/** The process metrics (RSS, CPU, event-loop lag, GC, heap) and podshim_build_info; once. */
export function enableProcessMetrics(build: { version: string; commit: string }): void {
  if (processMetrics) return;
  processMetrics = true;
  collectDefaultMetrics({ register: registry, prefix: "podshim_" });
  buildInfo = new Gauge({
    name: "podshim_build_info", help: "Always 1; the labels say which podshim build is running.",
    labelNames: ["version", "commit", "node"], registers: [registry],
  });
  buildInfo.set({ version: build.version, commit: build.commit, node: process.version }, 1);
}
