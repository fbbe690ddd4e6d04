// What the integration bed hands to tests through vitest's provide/inject.
import type { TestImages } from "./images.js";

export interface BedInfo {
  /** Unix socket of the shared containerd. */
  containerdSocket: string;
  /** Root of the shared containerd (config, root, state, log). */
  containerdDir: string;
  /** host:port of the plain-HTTP registry holding the test images. */
  registryHost: string;
  /** The registry's filesystem storage (the multi-node bed serves the same images from it). */
  registryStorage: string;
  /** Full references (host/repo:tag) of the test images. */
  images: TestImages;
  /** The compiled pause program (static). */
  pauseBinary: string;
  /** The bed's temp dir; tests may create their own subdirectories here. */
  tmpDir: string;
  /** A cgroup path ("/podshim-bed-XXXXXX") to put test containers under: teardown removes it
   * from every hierarchy, so containers killed by cleanup leave no cgroups behind. */
  cgroupParent: string;
}

declare module "vitest" {
  export interface ProvidedContext {
    bed: BedInfo;
  }
}
