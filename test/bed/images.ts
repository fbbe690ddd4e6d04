// The test images, all built from the host's static busybox and the project's pause program and
// pushed to the bed's registry.
import { readFile } from "node:fs/promises";
import { buildImage, hostPlatform, pushImage, pushIndex } from "./oci.js";
import type { BuiltImage, ImageSpec, LayerEntry, Platform, PushOptions } from "./oci.js";
import { runOk } from "./proc.js";

export const BUSYBOX_PATH = "/bin/busybox";
export const IMAGE_NAMESPACE = "podshim-test";

export interface TestImages {
  busybox: string;
  web: string;
  userUid: string;
  userName: string;
  userGroup: string;
  pause: string;
  multi: string;
}

const PASSWD = [
  "root:x:0:0:root:/root:/bin/sh",
  "test:x:1000:1000:test:/home/test:/bin/sh",
  "nobody:x:65534:65534:nobody:/nonexistent:/bin/false",
  "",
].join("\n");
const GROUP = ["root:x:0:", "test:x:1000:", "extra:x:50000:test", "nogroup:x:65534:", ""].join("\n");

export const WEB_INDEX_HTML = "<html><body>podshim test web</body></html>\n";

/** Applet names of the host busybox, each one to become a hard link. */
async function appletNames(busybox: string): Promise<string[]> {
  const { stdout } = await runOk(busybox, ["--list"], { timeoutMs: 10_000 });
  const names = new Set(stdout.split("\n").map((s) => s.trim()));
  return [...names].filter((s) => s !== "" && !s.includes("/") && s !== "busybox").sort();
}

/** Root filesystem layer: busybox with every applet as a hard link in /bin, plus users and the
 * mount-point directories a runtime expects. Hard links, not symlinks: masking an applet path
 * must not mask the shell behind it. */
export async function busyboxLayer(busybox = BUSYBOX_PATH): Promise<LayerEntry[]> {
  const binary = await readFile(busybox);
  const applets = await appletNames(busybox);
  return [
    { type: "dir", path: "/bin" },
    { type: "file", path: "/bin/busybox", mode: 0o755, content: binary },
    ...applets.map((name): LayerEntry => ({ type: "hardlink", path: `/bin/${name}`, target: "/bin/busybox" })),
    { type: "dir", path: "/dev" },
    { type: "dir", path: "/etc" },
    { type: "file", path: "/etc/passwd", content: PASSWD },
    { type: "file", path: "/etc/group", content: GROUP },
    { type: "dir", path: "/home" },
    { type: "dir", path: "/home/test" },
    { type: "dir", path: "/proc" },
    { type: "dir", path: "/root", mode: 0o700 },
    { type: "dir", path: "/sys" },
    { type: "dir", path: "/tmp", mode: 0o1777 },
  ];
}

/** The other architecture used for the multi-platform index. */
function foreignPlatform(host: Platform): Platform {
  return { architecture: host.architecture === "arm64" ? "ppc64le" : "arm64", os: "linux" };
}

export interface BuildAndPushOptions {
  registryHost: string;
  pauseBinary: string;
  push?: PushOptions;
}

/** Builds every test image and pushes it; returns full references (host/repo:tag). */
export async function buildAndPushTestImages(opts: BuildAndPushOptions): Promise<TestImages> {
  const base = await busyboxLayer();
  const pauseBinary = await readFile(opts.pauseBinary);
  const sh = { Cmd: ["sh"] };
  const specs: Record<Exclude<keyof TestImages, "multi">, { name: string; tag: string; spec: ImageSpec }> = {
    busybox: { name: "busybox", tag: "latest", spec: { layers: [base], config: sh } },
    web: {
      name: "web",
      tag: "latest",
      spec: {
        layers: [
          base,
          [
            { type: "dir", path: "/www" },
            { type: "file", path: "/www/index.html", content: WEB_INDEX_HTML },
          ],
        ],
        config: { Cmd: ["httpd", "-f", "-p", "80", "-h", "/www"], ExposedPorts: ["80/tcp"] },
      },
    },
    userUid: { name: "user-uid", tag: "latest", spec: { layers: [base], config: { ...sh, User: "1000" } } },
    userName: { name: "user-name", tag: "latest", spec: { layers: [base], config: { ...sh, User: "test" } } },
    userGroup: { name: "user-group", tag: "latest", spec: { layers: [base], config: { ...sh, User: "test:extra" } } },
    pause: {
      name: "pause",
      tag: "3.10",
      spec: {
        layers: [[{ type: "file", path: "/pause", mode: 0o755, content: pauseBinary }]],
        config: { Entrypoint: ["/pause"] },
      },
    },
  };

  const ref = (name: string, tag: string): string => `${opts.registryHost}/${IMAGE_NAMESPACE}/${name}:${tag}`;
  const built = new Map<string, BuiltImage>();
  const refs: Partial<TestImages> = {};
  for (const [key, { name, tag, spec }] of Object.entries(specs)) {
    const img = await buildImage(spec);
    built.set(key, img);
    await pushImage(opts.registryHost, `${IMAGE_NAMESPACE}/${name}`, tag, img, opts.push);
    refs[key as keyof TestImages] = ref(name, tag);
  }

  // The foreign image only has to be a valid manifest: nothing ever runs it.
  const foreign = await buildImage({
    platform: foreignPlatform(hostPlatform()),
    layers: [[{ type: "file", path: "/hello.txt", content: "not for this machine\n" }]],
    config: { Cmd: ["/hello.txt"] },
  });
  await pushIndex(opts.registryHost, `${IMAGE_NAMESPACE}/multi`, "latest", [built.get("busybox")!, foreign], opts.push);
  refs.multi = ref("multi", "latest");
  return refs as TestImages;
}
