// ImageFsInfo: how much of the snapshotter's filesystem podshim's images and container
// layers use (bytes and inodes), with its mountpoint, for the kubelet's image GC.
import { ImageFsInfoResponse, type ImageFsInfoRequest } from "../gen/cri/runtime/v1/api.js";
import type { UnaryRpc } from "../rpc/handlers.js";
import type { CriDeps } from "./deps.js";

export function imageFsInfo(deps: CriDeps): UnaryRpc<ImageFsInfoRequest, ImageFsInfoResponse> {
  return async () => {
    const u = await deps.images.fsInfo();
    return ImageFsInfoResponse.fromPartial({
      imageFilesystems: [{ timestamp: u.timestamp, fsId: { mountpoint: u.mountpoint }, usedBytes: { value: u.usedBytes }, inodesUsed: { value: u.inodesUsed } }],
      containerFilesystems: [],
    });
  };
}
