// Status: RuntimeReady says podshim has recovered its state and containerd answers now; NetworkReady says a CNI network config
// is loaded and its plugins exist. Neither failing is an error of the call: the conditions
// carry the reason and a message for the operator. verbose adds the details as JSON.
import { StatusResponse, type StatusRequest } from "../gen/cri/runtime/v1/api.js";
import type { UnaryRpc } from "../rpc/handlers.js";
import type { CriDeps } from "./deps.js";
import { nodeAppArmor, type AppArmorState } from "../oci/apparmor.js";

function apparmorInfo(a: AppArmorState): object {
  return { enabled: a.enabled, runtimeDefault: a.defaultProfile ?? "unconfined", message: a.message };
}
import { nodeFacts } from "../node/facts.js";
import { RUNTIME_COMMIT, RUNTIME_NAME, RUNTIME_VERSION } from "../version.js";

export function status(deps: CriDeps): UnaryRpc<StatusRequest, StatusResponse> {
  return async (req) => {
    // nodeAppArmor() also loads podshim-default, once, at the kubelet's first Status.
    const [containerd, network, handlers, apparmor] = await Promise.all([deps.containerdHealth.check(), deps.network.loadNetworkConfig(), deps.sandboxes.handlerFeatures(), nodeAppArmor()]);
    const info: Record<string, string> = {};
    if (req.verbose) {
      info.containerd = JSON.stringify(containerd.ready
        ? { socket: deps.config.containerd, namespace: deps.config.namespace, version: containerd.version, revision: containerd.revision }
        : { socket: deps.config.containerd, namespace: deps.config.namespace, error: containerd.message });
      const cni = { confDir: deps.config.cniConfDir, binDirs: deps.config.cniBinDirs, podCidr: deps.network.podCidr.current };
      info.cni = JSON.stringify(network.ok
        ? { ...cni, file: network.network.file, network: network.network.name }
        : { ...cni, error: network.message });
      info.config = JSON.stringify(deps.config);
      info.security = JSON.stringify({ seccompRuntimeDefault: deps.config.seccompDefaultProfile, apparmor: apparmorInfo(apparmor) });
      info.streaming = JSON.stringify({ url: deps.runtime?.streamingUrl() ?? "", ...(deps.streaming.exposure ? deps.streaming.exposure() : {}) });
      info.cniConfig = JSON.stringify(network.ok ? network.network.raw : null);
      info.node = JSON.stringify(await nodeFacts());
      info.peering = JSON.stringify(deps.runtime?.peering ? await deps.runtime.peering() : { serving: "off", peers: [] });
      info.version = JSON.stringify({ name: RUNTIME_NAME, version: RUNTIME_VERSION, commit: RUNTIME_COMMIT, node: process.version });
    }
    const recovery = deps.recovery();
    if (req.verbose) info.recovery = JSON.stringify(recovery);
    return StatusResponse.fromPartial({
      status: {
        conditions: [
          !recovery.ready
            ? { type: "RuntimeReady", status: false, reason: "RecoveringState", message: recovery.message }
            : containerd.ready
              ? { type: "RuntimeReady", status: true }
              : { type: "RuntimeReady", status: false, reason: "ContainerdUnreachable", message: containerd.message },
          network.ok
            ? { type: "NetworkReady", status: true }
            : { type: "NetworkReady", status: false, reason: network.reason, message: network.message },
        ],
      },
      info,
      // The empty name is the default handler, then every configured runtime class, each
      // with what its runtime binary says it supports.
      runtimeHandlers: handlers,
      // SupplementalGroupsPolicy Strict is honoured: only the pod's groups, not the image's.
      features: { supplementalGroupsPolicy: true },
    });
  };
}
