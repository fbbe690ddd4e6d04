// A 3-node cluster bed (test/bed/multinode.ts): each node a network namespace with its own
// containerd and podshim, pods talking across nodes by pod IP and through hostPorts, a node's
// podshim killed and restarted without disturbing the others, and a node taken down giving
// back its pod IPs. The figures (bed up/down time, pod-to-pod round trip) are printed and
// written to .tmp/bench/multinode.json.
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { criClient, type CriClient } from "../support/cri-client.js";
import { PODSHIM_MAIN } from "../support/podshim.js";
import { WEB_INDEX_HTML } from "../bed/images.js";
import { mountsUnder, run, shimsReferencing, waitGone } from "../bed/proc.js";
import { leasedAddresses, multinodeDown, multinodeUp, nodeDown, podshimPid, podshimUp, REGISTRY, type BedNode, type MultinodeBed } from "../bed/multinode.js";

const bed = inject("bed");
const dir = mkdtempSync(join(bed.tmpDir, "mn-"));
const HOST_PORT = 18080;
const figures: Record<string, unknown> = {};
let mn: MultinodeBed;
const clients = new Map<number, CriClient>();

/** A bed image as the nodes name it: the same repository on the fabric's registry. */
const nodeImage = (ref: string): string => ref.replace(bed.registryHost, REGISTRY);
const cri = (node: BedNode): CriClient => {
  let c = clients.get(node.index);
  if (!c) clients.set(node.index, (c = criClient(node.podshimSocket)));
  return c;
};

beforeAll(async () => {
  const t = performance.now();
  mn = await multinodeUp({ dir, nodes: 3, registryStorage: bed.registryStorage, podshimMain: PODSHIM_MAIN, restrictOomScoreAdj: true, pauseImage: nodeImage(bed.images.pause), logLevel: "debug" });
  figures.upMs = Math.round(performance.now() - t);
}, 120_000);

afterAll(async () => {
  for (const c of clients.values()) c.close();
  await multinodeDown(dir);
  const out = fileURLToPath(new URL("../../.tmp/bench/", import.meta.url));
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, "multinode.json"), JSON.stringify({ at: new Date().toISOString(), nodes: 3, ...figures }, null, 2));
  console.log("multi-node bed:", JSON.stringify(figures));
}, 180_000);

interface Pod {
  id: string;
  config: Record<string, unknown>;
  ip: string;
}

async function runPod(node: BedNode, name: string, portMappings: object[] = []): Promise<Pod> {
  const uid = randomBytes(8).toString("hex");
  const config = {
    metadata: { name, uid, namespace: "default", attempt: 0 },
    hostname: name,
    log_directory: join(dir, "logs", uid),
    port_mappings: portMappings,
    linux: { cgroup_parent: `${bed.cgroupParent}/mn-${uid}` },
  };
  const id: string = (await cri(node).runtime("RunPodSandbox", { config }, 120_000)).pod_sandbox_id;
  const ip: string = (await cri(node).runtime("PodSandboxStatus", { pod_sandbox_id: id })).status.network.ip;
  return { id, config, ip };
}

async function runContainer(node: BedNode, pod: Pod, name: string, image: string, command?: string[]): Promise<string> {
  const ref = nodeImage(image);
  await cri(node).image("PullImage", { image: { image: ref } }, 120_000);
  const { container_id: id } = await cri(node).runtime("CreateContainer", {
    pod_sandbox_id: pod.id, sandbox_config: pod.config,
    config: { metadata: { name }, image: { image: ref }, log_path: `${name}.log`, ...(command ? { command } : {}) },
  }, 60_000);
  await cri(node).runtime("StartContainer", { container_id: id }, 60_000);
  return id;
}

async function exec(node: BedNode, id: string, cmd: string[]): Promise<{ stdout: string; stderr: string; code: number }> {
  const res = await cri(node).runtime("ExecSync", { container_id: id, cmd, timeout: 20 }, 30_000);
  return { stdout: Buffer.from(res.stdout).toString(), stderr: Buffer.from(res.stderr).toString(), code: res.exit_code };
}

/** busybox wget, retried briefly: a just-started httpd may not listen yet. (No -T: Debian's
 * static busybox wget segfaults with a timeout option; ExecSync's timeout bounds it.) */
async function fetchFrom(node: BedNode, client: string, url: string): Promise<string> {
  let last = { stdout: "", stderr: "", code: -1 };
  for (let i = 0; i < 20; i++) {
    last = await exec(node, client, ["wget", "-q", "-O", "-", url]);
    if (last.code === 0) return last.stdout;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`wget ${url} from node ${node.index} failed: ${last.stderr}`);
}

let web: Pod;
let client1: { pod: Pod; id: string };
let client2: { pod: Pod; id: string };

describe("a 3-node bed", () => {
  it("comes up with every node serving CRI on its own containerd, and up again changes nothing", async () => {
    expect(mn.nodes).toHaveLength(3);
    for (const node of mn.nodes) {
      const v = await cri(node).runtime("Version", {});
      expect(v.runtime_name).toBe("podshim");
      const status = await cri(node).runtime("Status", {});
      expect(status.status.conditions.every((c: { status: boolean }) => c.status)).toBe(true);
    }
    const pids = await Promise.all(mn.nodes.map(podshimPid));
    const t = performance.now();
    await multinodeUp(mn.options);
    figures.upAgainMs = Math.round(performance.now() - t);
    expect(await Promise.all(mn.nodes.map(podshimPid))).toEqual(pids);
  });

  it("a pod on node 1 reaches a web server in a pod on node 2 by its pod IP, without NAT", async () => {
    const [n1, n2] = mn.nodes as [BedNode, BedNode];
    web = await runPod(n2, "web", [{ protocol: "TCP", container_port: 80, host_port: HOST_PORT }]);
    await runContainer(n2, web, "httpd", bed.images.web);
    expect(web.ip.startsWith("10.251.2.")).toBe(true);
    const pod1 = await runPod(n1, "client1");
    client1 = { pod: pod1, id: await runContainer(n1, pod1, "sh", bed.images.busybox, ["sleep", "3600"]) };
    expect(pod1.ip.startsWith("10.251.1.")).toBe(true);

    expect(await fetchFrom(n1, client1.id, `http://${web.ip}/`)).toBe(WEB_INDEX_HTML);

    // The web pod sees the client's own pod address: nothing translated it on the way. The
    // client holds a connection open for two seconds while the server's side is listed.
    const httpd = (await cri(n2).runtime("ListContainers", { filter: { pod_sandbox_id: web.id } })).containers[0].id as string;
    const [, seen] = await Promise.all([
      exec(n1, client1.id, ["sh", "-c", `sleep 2 | nc ${web.ip} 80`]),
      new Promise((r) => setTimeout(r, 700)).then(() => exec(n2, httpd, ["netstat", "-tn"])),
    ]);
    expect(seen.stdout).toContain(`${web.ip}:80`);
    expect(seen.stdout).toContain(`${pod1.ip}:`);
    const ping = await exec(n1, client1.id, ["ping", "-c", "10", "-i", "0.2", "-q", web.ip]);
    expect(ping.code, ping.stderr).toBe(0);
    const rtt = /min\/avg\/max = ([\d.]+)\/([\d.]+)\/([\d.]+) ms/.exec(ping.stdout);
    expect(rtt).not.toBeNull();
    figures.podToPodRttMs = { min: Number(rtt![1]), avg: Number(rtt![2]), max: Number(rtt![3]) };
    const t = performance.now();
    for (let i = 0; i < 5; i++) await fetchFrom(n1, client1.id, `http://${web.ip}/`);
    figures.crossNodeHttpViaExecSyncMs = Math.round((performance.now() - t) / 5);
  });

  it("a hostPort on node 2 answers from node 1 at node 2's address", async () => {
    const [n1, n2] = mn.nodes as [BedNode, BedNode];
    expect(await fetchFrom(n1, client1.id, `http://${n2.address}:${HOST_PORT}/`)).toBe(WEB_INDEX_HTML);
  });

  it("kill -9 of podshim on node 1 leaves node 2 alone, and node 1's pods are reported again after its restart", async () => {
    const [n1, n2] = mn.nodes as [BedNode, BedNode];
    const pod2 = await runPod(n2, "client2");
    client2 = { pod: pod2, id: await runContainer(n2, pod2, "sh", bed.images.busybox, ["sleep", "3600"]) };
    const before1 = (await cri(n1).runtime("ListContainers", {})).containers.map((c: { id: string; state: string }) => `${c.id}:${c.state}`).sort();

    const pid = (await podshimPid(n1))!;
    process.kill(pid, "SIGKILL");
    expect(await waitGone([pid], 5_000)).toEqual([]);
    clients.get(1)?.close();
    clients.delete(1);

    // Node 2 carries on: its pods are ready, its containers run, its web server answers.
    const pods2 = (await cri(n2).runtime("ListPodSandbox", {})).items;
    expect(pods2.map((p: { state: string }) => p.state)).toEqual(pods2.map(() => "SANDBOX_READY"));
    expect(await fetchFrom(n2, client2.id, `http://${web.ip}/`)).toBe(WEB_INDEX_HTML);

    await podshimUp(mn, n1);
    const pods1 = (await cri(n1).runtime("ListPodSandbox", {})).items;
    expect(pods1.map((p: { id: string; state: string }) => `${p.id}:${p.state}`)).toEqual([`${client1.pod.id}:SANDBOX_READY`]);
    const after1 = (await cri(n1).runtime("ListContainers", {})).containers.map((c: { id: string; state: string }) => `${c.id}:${c.state}`).sort();
    expect(after1).toEqual(before1);
    expect(await fetchFrom(n1, client1.id, `http://${web.ip}/`)).toBe(WEB_INDEX_HTML);
  });

  it("taking a node down releases its pod IPs and leaves nothing of it running", async () => {
    const n3 = mn.nodes[2]!;
    const pods = [await runPod(n3, "a"), await runPod(n3, "b")];
    const leased = await leasedAddresses(n3);
    expect(leased.sort()).toEqual(pods.map((p) => p.ip).sort());
    clients.get(3)?.close();
    clients.delete(3);

    await nodeDown(mn, n3, { keepDir: true });
    expect(await leasedAddresses(n3)).toEqual([]);
    expect(await shimsReferencing(`${n3.dir}/`)).toEqual([]);
    expect(await mountsUnder(n3.dir)).toEqual([]);
    expect((await run("ip", ["netns", "list"])).stdout).not.toContain(n3.netns);
    // The other nodes do not notice.
    expect(await fetchFrom(mn.nodes[0]!, client1.id, `http://${web.ip}/`)).toBe(WEB_INDEX_HTML);
  });

  it("comes down without leftovers: namespaces, mounts, processes, files", async () => {
    for (const c of clients.values()) c.close();
    clients.clear();
    const t = performance.now();
    await multinodeDown(dir);
    figures.downMs = Math.round(performance.now() - t);
    const netns = (await run("ip", ["netns", "list"])).stdout;
    for (const node of mn.nodes) expect(netns).not.toContain(node.netns);
    expect(netns).not.toContain(mn.fabricNetns);
    expect(await shimsReferencing(`${dir}/`)).toEqual([]);
    expect(await mountsUnder(dir)).toEqual([]);
    const left = (await run("pgrep", ["-f", dir])).stdout.trim();
    expect(left).toBe("");
  });
});
