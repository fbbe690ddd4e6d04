// Pod sandboxes through the CRI socket: a real pause container in containerd, a pinned netns
// wired by Debian's CNI plugins (bridge, host-local, portmap, bandwidth, loopback).
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { status as Status } from "@grpc/grpc-js";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { run, runOk } from "../bed/proc.js";
import { startPodshim, type PodshimHandle } from "../support/podshim.js";
import { statusOf } from "../support/cri-client.js";
import { testNetwork, type TestNetwork } from "../support/cni.js";

const bed = inject("bed");
const base = mkdtempSync(join(bed.tmpDir, "sandbox-"));
let net: TestNetwork;
let podshim: PodshimHandle;
const configFile = join(base, "podshim.toml");
const wrapper = join(base, "runc-logged");
const wrapperLog = join(base, "runc-logged.log");

beforeAll(async () => {
  net = testNetwork(base);
  writeFileSync(wrapper, `#!/bin/sh\necho "$@" >> ${wrapperLog}\nexec runc "$@"\n`, { mode: 0o755 });
  writeFileSync(configFile, ["[runtimes.logged]", 'runtime_type = "io.containerd.runc.v2"', "[runtimes.logged.options]", `BinaryName = "${wrapper}"`, ""].join("\n"));
  podshim = await startPodshim({ containerdSocket: bed.containerdSocket, baseDir: base, cniConfDir: net.confDir, configFile, extraArgs: ["--pause-image", bed.images.pause] });
});
afterAll(async () => {
  // Whatever a failed test left: stop and remove every sandbox, then the network.
  if (podshim?.process.exitCode === null) {
    const { items } = await podshim.cri.runtime("ListPodSandbox", {}).catch(() => ({ items: [] }));
    for (const s of items) await podshim.cri.runtime("RemovePodSandbox", { pod_sandbox_id: s.id }).catch(() => undefined);
  }
  await podshim?.cleanup();
  await net?.cleanup();
  rmSync(base, { recursive: true, force: true });
});

function podConfig(name: string, extra: Record<string, unknown> = {}) {
  const uid = randomBytes(8).toString("hex");
  return {
    metadata: { name, uid, namespace: "default", attempt: 0 },
    hostname: name,
    log_directory: join(base, "logs", uid),
    labels: { app: name, "podshim.test": "yes" },
    annotations: { "test.podshim/annotation": "1" },
    linux: { cgroup_parent: `${bed.cgroupParent}/pod-${uid.slice(0, 8)}`, security_context: { namespace_options: { network: "POD", pid: "CONTAINER", ipc: "POD" } } },
    ...extra,
  };
}

const runPod = async (config: object, handler = "") => (await podshim.cri.runtime("RunPodSandbox", { config, runtime_handler: handler }, 120_000)).pod_sandbox_id as string;
const podStatus = (id: string, verbose = true) => podshim.cri.runtime("PodSandboxStatus", { pod_sandbox_id: id, verbose });
const stopPod = (id: string) => podshim.cri.runtime("StopPodSandbox", { pod_sandbox_id: id }, 60_000);
const removePod = (id: string) => podshim.cri.runtime("RemovePodSandbox", { pod_sandbox_id: id }, 60_000);

async function info(id: string): Promise<{ pid: number; netnsPath: string; ips: string[] }> {
  return JSON.parse((await podStatus(id)).info.info);
}

async function inNetns(netns: string, cmd: string[], timeoutMs = 10_000) {
  return run("nsenter", [`--net=${netns}`, "--", ...cmd], { timeoutMs });
}

describe("RunPodSandbox", () => {
  it("runs a ready pod with an IP from the CNI network, reachable from the host and from another pod", async () => {
    const a = await runPod(podConfig("web-a"));
    const b = await runPod(podConfig("web-b"));
    const sa = (await podStatus(a)).status;
    const sb = (await podStatus(b)).status;
    expect(sa.state).toBe("SANDBOX_READY");
    expect(sa.metadata.name).toBe("web-a");
    expect(sa.labels.app).toBe("web-a");
    expect(sa.annotations["test.podshim/annotation"]).toBe("1");
    expect(sa.network.ip).toMatch(new RegExp(`^${net.subnet.split(".").slice(0, 3).join("\\.")}\\.`));
    expect(sb.network.ip).not.toBe(sa.network.ip);
    expect(BigInt(sa.created_at)).toBeGreaterThan(BigInt(Date.now() - 120_000) * 1_000_000n);

    const ia = await info(a);
    expect(ia.pid).toBeGreaterThan(0);
    expect(existsSync(ia.netnsPath)).toBe(true);
    // The pause process lives in the pinned netns.
    const nsOfPause = (await run("readlink", [`/proc/${ia.pid}/ns/net`])).stdout.trim();
    const nsOfPin = (await inNetns(ia.netnsPath, ["readlink", "/proc/self/ns/net"])).stdout.trim();
    expect(nsOfPause).toBe(nsOfPin);

    // Loopback is up inside the pod, eth0 has the pod IP.
    const addrs = (await inNetns(ia.netnsPath, ["ip", "-o", "addr"])).stdout;
    expect(addrs).toMatch(/\blo\b.*127\.0\.0\.1/);
    expect(addrs).toContain(sa.network.ip);

    // A web server in pod b, fetched from the host and from pod a.
    const ib = await info(b);
    const www = join(base, "www");
    rmSync(www, { recursive: true, force: true });
    await runOk("mkdir", ["-p", www]);
    writeFileSync(join(www, "index.html"), "hello from pod b\n");
    const server = await runOk("nsenter", [`--net=${ib.netnsPath}`, "--", "busybox", "httpd", "-p", "8080", "-h", www]);
    void server;
    try {
      const fromHost = await fetch(`http://${sb.network.ip}:8080/`, { signal: AbortSignal.timeout(5000) });
      expect(await fromHost.text()).toBe("hello from pod b\n");
      // Debian's static busybox wget crashes in glibc's resolver; node is the client instead.
      const fromPod = await inNetns(ia.netnsPath, [process.execPath, "-e", `fetch("http://${sb.network.ip}:8080/").then((r) => r.text()).then((t) => process.stdout.write(t))`]);
      expect(fromPod.stdout, JSON.stringify(fromPod)).toBe("hello from pod b\n");
    } finally {
      await run("nsenter", [`--net=${ib.netnsPath}`, "--", "busybox", "pkill", "-f", `httpd -p 8080 -h ${www}`]);
      await run("pkill", ["-f", `busybox httpd -p 8080 -h ${www}`]);
    }
    for (const id of [a, b]) {
      await stopPod(id);
      await removePod(id);
    }
  });

  it("answers a retry of the same pod identity with the ready sandbox, and refuses it once the sandbox is not ready", async () => {
    const cfg = podConfig("twice");
    const id = await runPod(cfg);
    // Twice at once and once after: the kubelet retrying a call its deadline cut off.
    const [r1, r2] = await Promise.all([runPod(cfg), runPod(cfg)]);
    expect([r1, r2]).toEqual([id, id]);
    await stopPod(id);
    const again = await statusOf(runPod(cfg));
    expect(again.code).toBe(Status.ALREADY_EXISTS);
    expect(again.details).toContain(id);
    await removePod(id);
    // Once removed, the identity is free again.
    const id2 = await runPod(cfg);
    await removePod(id2);
  });

  it("refuses an unknown runtime handler and a config without metadata", async () => {
    const res = await statusOf(runPod(podConfig("nohandler"), "gvisor"));
    expect(res.code).toBe(Status.INVALID_ARGUMENT);
    expect(res.details).toContain('runtime handler "gvisor" is not configured');
    const bad = await statusOf(podshim.cri.runtime("RunPodSandbox", { config: { hostname: "x" } }));
    expect(bad.code).toBe(Status.INVALID_ARGUMENT);
  });

  it("writes DNSConfig into the sandbox's resolv.conf", async () => {
    const id = await runPod(podConfig("dns", { dns_config: { servers: ["10.96.0.10"], searches: ["default.svc.cluster.local", "svc.cluster.local"], options: ["ndots:5"] } }));
    const resolv = readFileSync(join(podshim.dir, "root", "sandboxes", id, "resolv.conf"), "utf8");
    expect(resolv).toContain("nameserver 10.96.0.10");
    expect(resolv).toContain("search default.svc.cluster.local svc.cluster.local");
    expect(resolv).toContain("options ndots:5");
    await removePod(id);
  });

  it("runs a hostNetwork pod in the host's network namespace, without an IP of its own", async () => {
    const cfg = podConfig("hostnet");
    (cfg.linux.security_context.namespace_options as any).network = "NODE";
    const id = await runPod(cfg);
    const i = await info(id);
    expect(i.netnsPath).toBe("");
    expect((await podStatus(id)).status.network.ip).toBe("");
    const pauseNs = (await run("readlink", [`/proc/${i.pid}/ns/net`])).stdout.trim();
    const hostNs = (await run("readlink", ["/proc/self/ns/net"])).stdout.trim();
    expect(pauseNs).toBe(hostNs);
    await removePod(id);
  });

  it("configures the bandwidth plugin from the pod's annotations", async () => {
    // The plugin shapes on the host side: a tbf on the pod's host veth (ingress) and on an
    // ifb device (egress).
    const tbfs = async () => (await runOk("tc", ["qdisc", "show"])).stdout.split("\n").filter((l) => l.includes("tbf")).length;
    const before = await tbfs();
    const id = await runPod(podConfig("shaped", { annotations: { "kubernetes.io/ingress-bandwidth": "1M", "kubernetes.io/egress-bandwidth": "2M" } }));
    expect(await tbfs()).toBe(before + 2);
    await removePod(id);
    expect(await tbfs()).toBe(before);
  });

  it("answers a hostPort mapping on the node", async () => {
    const hostPort = 30000 + Math.floor(Math.random() * 2000);
    const id = await runPod(podConfig("ported", { port_mappings: [{ protocol: "TCP", container_port: 8080, host_port: hostPort }] }));
    const i = await info(id);
    const www = join(base, "www-port");
    await runOk("mkdir", ["-p", www]);
    writeFileSync(join(www, "index.html"), "via hostPort\n");
    await runOk("nsenter", [`--net=${i.netnsPath}`, "--", "busybox", "httpd", "-p", "8080", "-h", www]);
    try {
      // The node's address on the pod bridge (the gateway) stands for "the node" here.
      const res = await fetch(`http://${net.gateway}:${hostPort}/`, { signal: AbortSignal.timeout(5000) });
      expect(await res.text()).toBe("via hostPort\n");
    } finally {
      await run("pkill", ["-f", `busybox httpd -p 8080 -h ${www}`]);
      await removePod(id);
    }
  });

  it("stop and remove leave no netns, veth, IP lease or containerd object behind", async () => {
    const id = await runPod(podConfig("tidy"));
    const i = await info(id);
    const ip = (await podStatus(id)).status.network.ip;
    expect(readdirSync(join(net.leaseDir, net.name))).toContain(ip);
    // The pod's own /dev/shm is a tmpfs that the pause container holds.
    const shm = join(podshim.dir, "state", "sandboxes", id, "shm");
    expect(readFileSync("/proc/mounts", "utf8")).toContain(`tmpfs ${shm} tmpfs`);
    const shmInPause = readFileSync(`/proc/${i.pid}/mountinfo`, "utf8").split("\n").find((l) => l.split(" ")[4] === "/dev/shm");
    expect(shmInPause).toContain(" - tmpfs tmpfs ");
    await stopPod(id);
    expect(readFileSync("/proc/mounts", "utf8")).not.toContain(shm);
    expect((await podStatus(id)).status.state).toBe("SANDBOX_NOTREADY");
    await stopPod(id); // idempotent
    expect(existsSync(i.netnsPath)).toBe(false);
    expect(readdirSync(join(net.leaseDir, net.name))).not.toContain(ip);
    await removePod(id);
    await removePod(id); // idempotent
    expect((await statusOf(podStatus(id))).code).toBe(Status.NOT_FOUND);
    const ctrList = (await runOk("ctr", ["--address", bed.containerdSocket, "-n", podshim.namespace, "containers", "ls", "-q"])).stdout;
    expect(ctrList).not.toContain(id);
    const snaps = (await runOk("ctr", ["--address", bed.containerdSocket, "-n", podshim.namespace, "snapshots", "ls"])).stdout;
    expect(snaps).not.toContain(id);
    expect(readFileSync("/proc/mounts", "utf8")).not.toContain(id);
    // Stopping and removing unknown sandboxes is fine too.
    await stopPod("f".repeat(64));
    await removePod("f".repeat(64));
  });

  it("fails with the CNI plugin's own message and leaks nothing when ADD fails", async () => {
    const broken = testNetwork(base, { ipam: { type: "host-local", ranges: [[{ subnet: "10.300.0.0/24" }]] } });
    const p = await startPodshim({ containerdSocket: bed.containerdSocket, baseDir: base, cniConfDir: broken.confDir, extraArgs: ["--pause-image", bed.images.pause] });
    try {
      const netnsBefore = (await runOk("ip", ["netns", "list"])).stdout;
      const res = await statusOf(p.cri.runtime("RunPodSandbox", { config: podConfig("broken") }, 60_000));
      expect(res.code).not.toBe(Status.OK);
      expect(res.details).toMatch(/10\.300\.0\.0|invalid CIDR/i);
      expect((await p.cri.runtime("ListPodSandbox", {})).items).toEqual([]);
      expect((await runOk("ip", ["netns", "list"])).stdout).toBe(netnsBefore);
      const ctrList = (await runOk("ctr", ["--address", bed.containerdSocket, "-n", p.namespace, "containers", "ls", "-q"])).stdout.trim();
      expect(ctrList).toBe("");
      expect(existsSync(join(p.dir, "root", "sandboxes")) ? readdirSync(join(p.dir, "root", "sandboxes")) : []).toEqual([]);
    } finally {
      await p.cleanup();
      await broken.cleanup();
    }
  });

  it("runs 10 pods in parallel, each with its own IP, and lists and filters them", async () => {
    const ids = await Promise.all(Array.from({ length: 10 }, (_, i) => runPod(podConfig(`par-${i}`))));
    const ips = await Promise.all(ids.map(async (id) => (await podStatus(id)).status.network.ip));
    expect(new Set(ips).size).toBe(10);
    const listed = (await podshim.cri.runtime("ListPodSandbox", { filter: { label_selector: { "podshim.test": "yes" } } })).items.map((s: any) => s.id);
    for (const id of ids) expect(listed).toContain(id);
    const one = (await podshim.cri.runtime("ListPodSandbox", { filter: { id: ids[0]!.slice(0, 13) } })).items;
    expect(one.map((s: any) => s.id)).toEqual([ids[0]]);
    await stopPod(ids[1]!);
    const notReady = (await podshim.cri.runtime("ListPodSandbox", { filter: { state: { state: "SANDBOX_NOTREADY" } } })).items.map((s: any) => s.id);
    expect(notReady).toContain(ids[1]);
    expect(notReady).not.toContain(ids[0]);
    await Promise.all(ids.map((id) => removePod(id)));
  });

  it("runs a pod under the runtime a handler names", async () => {
    // crun would be the natural example, but crun refuses hybrid cgroup hosts like this one
    // ("cgroups in hybrid mode not supported"); a runc wrapper that logs proves the choice.
    const id = await runPod(podConfig("wrapped"), "logged");
    expect((await podStatus(id)).status.runtime_handler).toBe("logged");
    expect(readFileSync(wrapperLog, "utf8")).toContain(id);
    await removePod(id);
  });

  it("is reported and stoppable after podshim restarts", async () => {
    const id = await runPod(podConfig("survivor"));
    const before = (await podStatus(id)).status;
    await podshim.stop();
    podshim.cri.close();
    podshim = await startPodshim({ containerdSocket: bed.containerdSocket, baseDir: base, dir: podshim.dir, cniConfDir: net.confDir, configFile, extraArgs: ["--pause-image", bed.images.pause] });
    const after = (await podStatus(id)).status;
    expect(after).toEqual(before);
    const i = await info(id);
    await stopPod(id);
    expect(existsSync(i.netnsPath)).toBe(false);
    await removePod(id);
  });
});
