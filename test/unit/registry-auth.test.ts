import { describe, expect, it } from "vitest";
import { InvalidArgumentError, UnauthenticatedError, UnavailableError } from "../../src/errors/errors.js";
import { RegistryAuth, credentialsFromAuthConfig, parseChallenges, pullScope } from "../../src/registry/auth.js";
import type { AuthContext, AuthHttpRequest, AuthHttpResponse, Challenge } from "../../src/registry/auth.js";

describe("parseChallenges", () => {
  const cases: Array<[string, Challenge[]]> = [
    ['Basic realm="Registry Realm"', [{ scheme: "basic", params: { realm: "Registry Realm" } }]],
    [
      'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull"',
      [{ scheme: "bearer", params: { realm: "https://auth.docker.io/token", service: "registry.docker.io", scope: "repository:library/busybox:pull" } }],
    ],
    [
      'Bearer realm="https://a/token", scope="repository:x:pull,push repository:y:pull", error="insufficient_scope"',
      [{ scheme: "bearer", params: { realm: "https://a/token", scope: "repository:x:pull,push repository:y:pull", error: "insufficient_scope" } }],
    ],
    [
      'Bearer realm="https://a/t",service="s", Basic realm="b, with comma"',
      [
        { scheme: "bearer", params: { realm: "https://a/t", service: "s" } },
        { scheme: "basic", params: { realm: "b, with comma" } },
      ],
    ],
    ['BEARER Realm=https://a/t , Service = plain', [{ scheme: "bearer", params: { realm: "https://a/t", service: "plain" } }]],
    ['Basic realm="esc\\"aped\\\\"', [{ scheme: "basic", params: { realm: 'esc"aped\\' } }]],
    ["Negotiate", [{ scheme: "negotiate", params: {} }]],
    ["Negotiate abc==, Basic realm=x", [
      { scheme: "negotiate", params: { abc: "=" } },
      { scheme: "basic", params: { realm: "x" } },
    ]],
    ["", []],
  ];
  it.each(cases)("%s", (header, want) => {
    expect(parseChallenges(header)).toEqual(want);
  });
});

const AUTH = { username: "", password: "", auth: "", serverAddress: "", identityToken: "", registryToken: "" };

describe("credentialsFromAuthConfig", () => {
  it.each([
    [undefined, undefined],
    [AUTH, undefined],
    [{ ...AUTH, username: "u", password: "p" }, { username: "u", password: "p" }],
    [{ ...AUTH, auth: Buffer.from("u:p:with:colons").toString("base64") }, { username: "u", password: "p:with:colons" }],
    [{ ...AUTH, auth: Buffer.from("u:p\0\0").toString("base64") }, { username: "u", password: "p" }],
    [{ ...AUTH, username: "explicit", password: "x", auth: Buffer.from("u:p").toString("base64") }, { username: "explicit", password: "x" }],
    [{ ...AUTH, identityToken: "refresh" }, { identityToken: "refresh" }],
    [{ ...AUTH, registryToken: "bearer" }, { registryToken: "bearer" }],
    [{ ...AUTH, serverAddress: "https://r.example" }, undefined],
  ])("%j", (input, want) => {
    expect(credentialsFromAuthConfig(input)).toEqual(want);
  });

  it.each([["not base64!"], [Buffer.from("no-colon").toString("base64")]])("refuses auth %j without quoting it", (auth) => {
    let caught: unknown;
    try {
      credentialsFromAuthConfig({ ...AUTH, auth });
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(InvalidArgumentError);
    expect((caught as Error).message).not.toContain(auth);
  });
});

/** A fake token server: records requests and answers from a handler. */
function fakeHttp(handler: (req: AuthHttpRequest) => { status: number; body?: unknown }) {
  const requests: AuthHttpRequest[] = [];
  const http = async (req: AuthHttpRequest): Promise<AuthHttpResponse> => {
    requests.push(req);
    const r = handler(req);
    const body = r.body === undefined ? Buffer.alloc(0) : Buffer.from(typeof r.body === "string" ? r.body : JSON.stringify(r.body));
    return { status: r.status, headers: {}, body };
  };
  return { http, requests };
}

const BEARER = 'Bearer realm="https://auth.example/token",service="reg.example"';

function ctx(http: AuthContext["http"], extra: Partial<AuthContext> = {}): AuthContext {
  return { endpoint: "https://reg.example/v2", scopes: [pullScope("team/app")], http, ...extra };
}

describe("RegistryAuth", () => {
  it("anonymous bearer: GET realm with service and scope, no Authorization; cached afterwards", async () => {
    const { http, requests } = fakeHttp(() => ({ status: 200, body: { token: "t1" } }));
    const auth = new RegistryAuth();
    expect(await auth.authorize(ctx(http))).toBeUndefined();
    expect(await auth.challenged(ctx(http), [BEARER], undefined)).toBe("Bearer t1");
    expect(requests).toHaveLength(1);
    const url = requests[0]!.url;
    expect(url.origin + url.pathname).toBe("https://auth.example/token");
    expect(url.searchParams.get("service")).toBe("reg.example");
    expect(url.searchParams.getAll("scope")).toEqual(["repository:team/app:pull"]);
    expect(requests[0]!.headers.Authorization).toBeUndefined();
    // Remembered challenge + cached token: no second token request.
    expect(await auth.authorize(ctx(http))).toBe("Bearer t1");
    expect(requests).toHaveLength(1);
    // Another scope is another token.
    expect(await auth.authorize(ctx(http, { scopes: [pullScope("other")] }))).toBe("Bearer t1");
    expect(requests).toHaveLength(2);
  });

  it("bearer with username/password sends Basic to the token server; the challenge's scopes are added", async () => {
    const { http, requests } = fakeHttp(() => ({ status: 200, body: { access_token: "at" } }));
    const auth = new RegistryAuth();
    const c = ctx(http, { creds: { username: "u", password: "p" } });
    expect(await auth.challenged(c, [`${BEARER},scope="repository:team/app:pull repository:base:pull"`], undefined)).toBe("Bearer at");
    expect(requests[0]!.headers.Authorization).toBe(`Basic ${Buffer.from("u:p").toString("base64")}`);
    expect(requests[0]!.url.searchParams.getAll("scope")).toEqual(["repository:base:pull", "repository:team/app:pull"]);
  });

  it("credentials are part of the cache key", async () => {
    let n = 0;
    const { http, requests } = fakeHttp(() => ({ status: 200, body: { token: `t${++n}` } }));
    const auth = new RegistryAuth();
    await auth.challenged(ctx(http, { creds: { username: "a", password: "1" } }), [BEARER], undefined);
    expect(await auth.authorize(ctx(http, { creds: { username: "b", password: "2" } }))).toBe("Bearer t2");
    expect(await auth.authorize(ctx(http, { creds: { username: "a", password: "1" } }))).toBe("Bearer t1");
    expect(requests).toHaveLength(2);
  });

  it("honours expires_in, defaulting to 60 s", async () => {
    let now = 1_000_000;
    let n = 0;
    const { http, requests } = fakeHttp(() => ({ status: 200, body: n++ === 0 ? { token: "short", expires_in: 300 } : { token: "default" } }));
    const auth = new RegistryAuth({ now: () => now });
    await auth.challenged(ctx(http), [BEARER], undefined);
    now += 250_000;
    expect(await auth.authorize(ctx(http))).toBe("Bearer short");
    now += 50_000;
    expect(await auth.authorize(ctx(http))).toBe("Bearer default");
    now += 50_000;
    expect(await auth.authorize(ctx(http))).toBe("Bearer default");
    now += 10_000;
    await auth.authorize(ctx(http));
    expect(requests).toHaveLength(3);
  });

  it("concurrent requests for one token share the fetch", async () => {
    const { http, requests } = fakeHttp(() => ({ status: 200, body: { token: "t" } }));
    const auth = new RegistryAuth();
    await auth.challenged(ctx(http, { scopes: ["s0"] }), [BEARER], undefined);
    const all = await Promise.all([1, 2, 3].map(() => auth.authorize(ctx(http, { scopes: ["s1"] }))));
    expect(all).toEqual(["Bearer t", "Bearer t", "Bearer t"]);
    expect(requests).toHaveLength(2);
  });

  it("a refused token is forgotten and fetched again", async () => {
    let n = 0;
    const { http } = fakeHttp(() => ({ status: 200, body: { token: `t${++n}` } }));
    const auth = new RegistryAuth();
    await auth.challenged(ctx(http), [BEARER], undefined);
    expect(await auth.challenged(ctx(http), [`${BEARER},error="invalid_token"`], "Bearer t1")).toBe("Bearer t2");
  });

  it("identity token: OAuth2 POST with refresh_token and client_id", async () => {
    const { http, requests } = fakeHttp(() => ({ status: 200, body: { access_token: "oauth" } }));
    const auth = new RegistryAuth();
    expect(await auth.challenged(ctx(http, { creds: { identityToken: "refresh" } }), [BEARER], undefined)).toBe("Bearer oauth");
    expect(requests[0]!.method).toBe("POST");
    const form = new URLSearchParams(requests[0]!.body!.toString());
    expect(Object.fromEntries(form)).toEqual({
      grant_type: "refresh_token",
      refresh_token: "refresh",
      service: "reg.example",
      scope: "repository:team/app:pull",
      client_id: "podshim",
    });
  });

  it.each([404, 405])("identity token: POST answered %i falls back to GET with Basic", async (status) => {
    const { http, requests } = fakeHttp((req) => (req.method === "POST" ? { status } : { status: 200, body: { token: "viaget" } }));
    const auth = new RegistryAuth();
    expect(await auth.challenged(ctx(http, { creds: { identityToken: "refresh" } }), [BEARER], undefined)).toBe("Bearer viaget");
    expect(requests.map((r) => r.method)).toEqual(["POST", "GET"]);
    expect(requests[1]!.headers.Authorization).toBe(`Basic ${Buffer.from(":refresh").toString("base64")}`);
  });

  it("registry token goes straight to the registry, never to a token server", async () => {
    const { http, requests } = fakeHttp(() => ({ status: 500 }));
    const auth = new RegistryAuth();
    const c = ctx(http, { creds: { registryToken: "rt" } });
    expect(await auth.authorize(c)).toBe("Bearer rt");
    expect(await auth.challenged(c, [BEARER], "Bearer rt")).toBeUndefined();
    expect(requests).toHaveLength(0);
  });

  it("basic: credentials when given, nothing to retry with otherwise or when refused", async () => {
    const { http } = fakeHttp(() => ({ status: 500 }));
    const auth = new RegistryAuth();
    const basic = `Basic ${Buffer.from("u:p").toString("base64")}`;
    expect(await auth.challenged(ctx(http), ['Basic realm="r"'], undefined)).toBeUndefined();
    expect(await auth.challenged(ctx(http, { creds: { username: "u", password: "p" } }), ['Basic realm="r"'], undefined)).toBe(basic);
    expect(await auth.authorize(ctx(http, { creds: { username: "u", password: "p" } }))).toBe(basic);
    expect(await auth.challenged(ctx(http, { creds: { username: "u", password: "p" } }), ['Basic realm="r"'], basic)).toBeUndefined();
  });

  it("token server refusals are typed and never quote secrets", async () => {
    const refusing = fakeHttp(() => ({ status: 401, body: { errors: [{ code: "UNAUTHORIZED" }] } }));
    const err = await new RegistryAuth()
      .challenged(ctx(refusing.http, { creds: { username: "u", password: "hunter2" } }), [BEARER], undefined)
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnauthenticatedError);
    expect((err as Error).message).toContain("refused the credentials given");
    expect((err as Error).message).not.toContain("hunter2");

    const failing = fakeHttp(() => ({ status: 503 }));
    await expect(new RegistryAuth().challenged(ctx(failing.http), [BEARER], undefined)).rejects.toBeInstanceOf(UnavailableError);

    const noToken = fakeHttp(() => ({ status: 200, body: { nothing: true } }));
    await expect(new RegistryAuth().challenged(ctx(noToken.http), [BEARER], undefined)).rejects.toThrow(/without a token/);

    const badRealm = fakeHttp(() => ({ status: 200, body: { token: "t" } }));
    await expect(new RegistryAuth().challenged(ctx(badRealm.http), ['Bearer realm="ftp://x"'], undefined)).rejects.toThrow(/non-HTTP realm/);
  });
});
