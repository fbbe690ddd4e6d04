// Everything buildContainerSpec needs from the node, gathered in one place: the container's
// own /etc/passwd and /etc/group (read through the snapshot's layers, nothing mounted), host
// paths and devices, Localhost seccomp profiles, and facts about the node that do not change
// while podshim runs (cgroup version, controllers, capabilities, AppArmor), read once.
import { access, readFile } from "node:fs/promises";
import type { Config } from "../config/options.js";
import type { Mount as SnapshotMount } from "../containerd/snapshots.js";
import { InvalidArgumentError } from "../errors/errors.js";
import { NamespaceMode, type ContainerConfig, type LinuxContainerResources } from "../gen/cri/runtime/v1/api.js";
import type { ImageEntry } from "../image/image-store.js";
import { appArmorHost } from "../oci/apparmor.js";
import { capabilitiesFromMask } from "../oci/capabilities.js";
import { runtimeDefaultSeccomp } from "../oci/seccomp.js";
import { checkSeccompLoadable } from "../oci/seccomp-check.js";
import { loadLocalhostSeccomp } from "../oci/seccomp-files.js";
import type { Spec } from "../oci/spec-types.js";
import type { SandboxFilePaths } from "../sandbox/sandbox-files.js";
import type { SandboxRecord } from "../sandbox/sandbox-store.js";
import { applyResourceUpdate, buildContainerSpec, effectiveStopSignal, type ResourceOptions } from "./container-spec.js";
import { hostDevices, prepareMountSources, readRootfsFile, resolveDevices } from "./rootfs-files.js";
import { resolveUser, type ResolvedUser } from "./user.js";

export interface PreparedSpec {
  spec: Spec;
  user: ResolvedUser;
  stopSignal: number;
}

export interface PrepareSpecRequest {
  id: string;
  config: ContainerConfig;
  sandbox: SandboxRecord;
  image: ImageEntry;
  imageName: string;
  /** The container's snapshot (Snapshots.Prepare's mounts), once prepared: awaited only when the
   * image's passwd and group files are not cached yet, so the spec is built beside the prepare. */
  rootfs: Promise<SnapshotMount[]>;
  files: SandboxFilePaths;
  /** The pid of a running container of the pod, for PID mode TARGET. */
  targetPid: (containerId: string) => number;
  podshim: Config;
}

interface NodeFacts extends ResourceOptions {
  allCapabilities: string[];
  currentOomScoreAdj: number;
}

let facts: Promise<NodeFacts> | undefined;

const exists = (path: string): Promise<boolean> => access(path).then(() => true, () => false);

/** What the node offers; read once, these do not change while podshim runs. */
export function nodeFacts(): Promise<NodeFacts> {
  facts ??= (async () => {
    // Only a unified-only host counts as v2: on a hybrid host runc drives the v1 controllers.
    const cgroupV2 = (await exists("/sys/fs/cgroup/cgroup.controllers"));
    const swapController = cgroupV2 ? true : await exists("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes");
    const hugetlbController = cgroupV2 ? (await readFile("/sys/fs/cgroup/cgroup.controllers", "utf8")).includes("hugetlb") : await exists("/sys/fs/cgroup/hugetlb");
    const status = await readFile("/proc/self/status", "utf8");
    const capEff = /^CapEff:\s*([0-9a-f]+)$/m.exec(status)?.[1] ?? "0";
    const currentOomScoreAdj = Number((await readFile("/proc/self/oom_score_adj", "utf8")).trim());
    return { cgroupV2, swapController, hugetlbController, allCapabilities: capabilitiesFromMask(capEff), currentOomScoreAdj } satisfies NodeFacts;
  })();
  return facts;
}

/**
 * Reads what the spec needs from the node and builds it. A missing host path is refused
 * rather than created: a typo in a pod spec should fail loudly, not bind an empty directory
 * (the kubelet creates the paths it means to create, DirectoryOrCreate and its own dirs,
 * before it asks).
 */
export async function prepareContainerSpec(req: PrepareSpecRequest): Promise<PreparedSpec> {
  const { config, sandbox, image } = req;
  const [node, apparmor] = await Promise.all([nodeFacts(), appArmorHost()]);
  const sc = config.linux?.securityContext;

  const privileged = sc?.privileged === true;
  const withoutHostDevices = req.podshim.runtimes[sandbox.runtimeHandler]?.privilegedWithoutHostDevices === true;
  // Independent reads, all at once.
  const [{ passwd, group }, mountSources, devices, host, hostname, localhostSeccomp] = await Promise.all([
    userFiles(image.chainId, req.rootfs),
    checkHostPaths(config).then(() => prepareMountSources(config.mounts)),
    resolveDevices(config.devices),
    privileged && !withoutHostDevices ? hostDevices() : Promise.resolve(undefined),
    readFile(req.files.hostname, "utf8").then((h) => h.trim(), () => ""),
    loadLocalhostSeccomp(config.linux?.securityContext),
  ]);
  const user = resolveUser({ ...(sc ? { security: sc } : {}), imageUser: image.config.config?.User ?? "", passwd, group });

  const pidMode = sc?.namespaceOptions?.pid;
  const targetId = sc?.namespaceOptions?.targetId ?? "";
  const targetPid = pidMode === NamespaceMode.TARGET ? req.targetPid(targetId) : undefined;

  const spec = buildContainerSpec({
    id: req.id,
    sandboxId: sandbox.id,
    config,
    sandboxConfig: sandbox.config,
    image: image.config,
    imageName: req.imageName,
    hostname,
    sandboxPid: sandbox.pid,
    ...(sandbox.netnsPath ? { netnsPath: sandbox.netnsPath } : {}),
    ...(targetPid !== undefined ? { targetPid } : {}),
    files: req.files,
    user,
    cgroupDriver: req.podshim.cgroupDriver,
    restrictOomScoreAdj: req.podshim.restrictOomScoreAdj,
    currentOomScoreAdj: node.currentOomScoreAdj,
    allCapabilities: node.allCapabilities,
    cgroupV2: node.cgroupV2,
    ...(node.swapController !== undefined ? { swapController: node.swapController } : {}),
    ...(node.hugetlbController !== undefined ? { hugetlbController: node.hugetlbController } : {}),
    ...(host ? { hostDevices: host } : {}),
    devices,
    privilegedWithoutHostDevices: withoutHostDevices,
    deviceOwnershipFromSecurityContext: req.podshim.deviceOwnershipFromSecurityContext,
    defaultSeccomp: (caps) => runtimeDefaultSeccomp(caps, process.arch, req.podshim.seccompDefaultProfile),
    localhostSeccomp,
    ...(apparmor ? { apparmor } : {}),
    mountSources,
  });
  if (spec.linux.seccomp !== undefined) await checkSeccompLoadable(spec.linux.seccomp);
  return { spec, user, stopSignal: effectiveStopSignal(config, image.config) };
}

/** Images whose passwd and group files were read lately, by chain id. */
const userFilesCache = new Map<string, Promise<{ passwd: string | undefined; group: string | undefined }>>();
const USER_FILES_CACHE_SIZE = 64;

/**
 * The image's /etc/passwd and /etc/group. A new container's snapshot has an empty upper layer,
 * so they depend on the image alone: read once per image, not once per container.
 */
function userFiles(chainId: string, rootfs: Promise<SnapshotMount[]>): Promise<{ passwd: string | undefined; group: string | undefined }> {
  let files = userFilesCache.get(chainId);
  if (!files) {
    files = rootfs.then((mounts) => Promise.all([readRootfsFile(mounts, "/etc/passwd"), readRootfsFile(mounts, "/etc/group")])).then(([passwd, group]) => ({ passwd, group }));
    files.catch(() => userFilesCache.delete(chainId));
    userFilesCache.set(chainId, files);
    if (userFilesCache.size > USER_FILES_CACHE_SIZE) userFilesCache.delete(userFilesCache.keys().next().value!);
  }
  return files;
}

async function checkHostPaths(config: ContainerConfig): Promise<void> {
  for (const m of config.mounts) {
    if (m.image !== undefined && m.image.image !== "") continue;
    if (m.hostPath === "" || !(await exists(m.hostPath))) {
      throw new InvalidArgumentError(`mount of ${m.containerPath || "(no container path)"}: host path ${JSON.stringify(m.hostPath)} does not exist on the node`);
    }
  }
}

/** A stored spec with new resources, for UpdateContainerResources. */
export async function specWithResources(spec: Spec, resources: LinuxContainerResources): Promise<Spec> {
  return applyResourceUpdate(spec, resources, await nodeFacts());
}
