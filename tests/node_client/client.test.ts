// The API as a TypeScript team sees it: clients generated from proto/ with
// protoc-gen-es (no hand-written types), run against the real server binary
// on a loopback port over a bare config repository in a temporary folder.
//
// - connect-es over gRPC (HTTP/2) calls every RPC of both services: builds of
//   branches that git allows (`renovate/@types-node-20.x`, `fix#42`,
//   `feature/JIRA-123+fix`) upload and release, structured errors decode,
//   paging and policy request ids work;
// - connect-es over gRPC-Web (HTTP/1.1), as a browser would call;
// - grpc-js with @grpc/proto-loader (from proto/ as well) shows the server's
//   messages exactly as written (`did you mean "shop"?`, no `%3F`).
//
// Run by `make node-client-test`; RELEASE_MANAGER_BIN names the server.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";

import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

import { Outcome } from "./gen/releasemanager/v1/common_pb.js";
import { ErrorReason } from "./gen/releasemanager/v1/errors_pb.js";
import { PolicyService } from "./gen/releasemanager/v1/policy_service_pb.js";
import {
  DeploymentState,
  ReleaseService,
  type PushArtifactRequest,
} from "./gen/releasemanager/v1/release_service_pb.js";
import { BadRequestSchema, ErrorInfoSchema } from "./gen/google/rpc/error_details_pb.js";

const ROOT = resolve(process.env.RELEASE_MANAGER_ROOT ?? process.cwd());
const OPS = { authorization: "Bearer ops-token" };
const CI = { authorization: "Bearer ci-token" };
const ALICE = { name: "Alice Operator", email: "alice@example.com" };
const BRANCHES = ["renovate/@types-node-20.x", "fix#42", "feature/JIRA-123+fix"];

let folder: string;
let server: ChildProcess;
let address: string;
let release: Client<typeof ReleaseService>;
let policy: Client<typeof PolicyService>;

function git(cwd: string, ...args: string[]): string {
  return execFileSync("git", args, {
    cwd,
    encoding: "utf8",
    env: {
      PATH: process.env.PATH,
      GIT_CONFIG_GLOBAL: "/dev/null",
      GIT_CONFIG_NOSYSTEM: "1",
      GIT_AUTHOR_NAME: "CI Bot",
      GIT_AUTHOR_EMAIL: "ci@example.com",
      GIT_COMMITTER_NAME: "CI Bot",
      GIT_COMMITTER_EMAIL: "ci@example.com",
    },
  });
}

function spec(service: string, branch: string, id: string, extra: object = {}): string {
  return JSON.stringify(
    {
      id,
      service,
      application: { sha: "a".repeat(40), branch, authorName: "Dana Dev", authorEmail: "dana@example.com", message: "a change" },
      ci: { jobUrl: "https://ci.example.com/1", start: "2026-01-01T00:00:00Z", end: "2026-01-01T00:05:00Z" },
      ...extra,
    },
    null,
    2,
  );
}

/** A bare remote with one master build of `shop`, committed as CI does. */
function configRepo(): string {
  const remote = join(folder, "config.git");
  const work = join(folder, "work");
  git(folder, "init", "-q", "--bare", "-b", "master", "config.git");
  git(folder, "init", "-q", "-b", "master", "work");
  const base = join(work, "builds", "shop", "master");
  for (const env of ["dev", "staging", "prod"]) {
    mkdirSync(join(base, env), { recursive: true });
    writeFileSync(join(base, env, "deployment.yaml"), "kind: Deployment\n");
  }
  writeFileSync(join(base, "artifact.json"), spec("shop", "master", "master-1"));
  git(work, "add", "-A");
  git(work, "commit", "-q", "-m", "[shop] build tag master-1");
  git(work, "push", "-q", remote, "master");
  return remote;
}

before(async () => {
  folder = mkdtempSync(join(tmpdir(), "rm-node-client-"));
  const remote = configRepo();
  const binary = process.env.RELEASE_MANAGER_BIN ?? join(ROOT, "target", "debug", "release-manager");
  server = spawn(
    binary,
    [
      "start", "--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--poll-interval", "0",
      "--config-repo", remote, "--data-dir", join(folder, "data"),
      "--hamctl-auth-token", "ops-token", "--artifact-auth-token", "ci-token",
    ],
    { env: { PATH: process.env.PATH, NO_COLOR: "1", RUST_LOG: "info" }, stdio: ["ignore", "ignore", "pipe"] },
  );
  address = await new Promise<string>((found, failed) => {
    const timer = setTimeout(() => failed(new Error("the server did not start within 60 s")), 60_000);
    createInterface({ input: server.stderr! }).on("line", (line) => {
      const match = /serving gRPC.*addr=(\S+)/.exec(line);
      if (match) {
        clearTimeout(timer);
        found(match[1]);
      }
    });
    server.on("exit", (code) => failed(new Error(`the server exited with ${code}`)));
  });
  const transport = createGrpcTransport({ baseUrl: `http://${address}` });
  release = createClient(ReleaseService, transport);
  policy = createClient(PolicyService, transport);
});

after(() => {
  server?.kill("SIGTERM");
  rmSync(folder, { recursive: true, force: true });
});

async function* chunks(files: [string, string][]): AsyncIterable<Partial<PushArtifactRequest>> {
  for (const [path, data] of files) {
    yield { path, data: new TextEncoder().encode(data) };
  }
}

async function failure(call: Promise<unknown>): Promise<ConnectError> {
  try {
    await call;
  } catch (error) {
    return ConnectError.from(error);
  }
  assert.fail("the call should fail");
}

test("builds of branches git allows upload and release", async () => {
  for (const [n, branch] of BRANCHES.entries()) {
    const id = `build-${n}`;
    const files: [string, string][] = [
      ["artifact.json", spec("shop", branch, id, n === 0 ? { runner: { os: "linux" } } : {})],
      ["dev/deployment.yaml", "kind: Deployment\n"],
      ["staging/deployment.yaml", "kind: Deployment\n"],
      ["prod/deployment.yaml", "kind: Deployment\n"],
    ];
    const pushed = await release.pushArtifact(chunks(files), { headers: CI });
    assert.equal(pushed.outcome, Outcome.APPLIED);
    assert.equal(pushed.branch, branch);
    if (n === 0) {
      assert.equal(pushed.warnings.length, 1);
      assert.match(pushed.warnings[0], /runner/);
    }
    const again = await release.pushArtifact(chunks(files), { headers: CI });
    assert.equal(again.outcome, Outcome.ALREADY_UP_TO_DATE);
    assert.equal(again.commitSha, pushed.commitSha, "the build commit on every outcome");
    const released = await release.release(
      { service: "shop", environment: "dev", source: { case: "branch", value: branch }, committer: ALICE },
      { headers: OPS },
    );
    assert.equal(released.result?.artifactId, id);
    assert.equal(released.result?.branch, branch);
  }
  const builds = await release.describeArtifact({ service: "shop", branch: BRANCHES[1], pageSize: 5 }, { headers: OPS });
  assert.deepEqual(builds.artifacts.map((b) => b.branch), [BRANCHES[1]]);
});

test("every read, paged", async () => {
  const services = await release.listServices({ pageSize: 1 }, { headers: OPS });
  assert.deepEqual(services.services.map((s) => s.name), ["shop"]);
  assert.equal(services.nextPageToken, "");
  const status = await release.status({ service: "shop" }, { headers: OPS });
  const dev = status.environments.find((e) => e.environment === "dev")!;
  assert.equal(dev.namespaces.length, 1);
  assert.equal(dev.namespaces[0].namespace, "dev");
  assert.equal(dev.artifact?.artifactId, dev.namespaces[0].artifact?.artifactId);
  const history = await release.describeRelease({ service: "shop", environment: "dev", pageSize: 2 }, { headers: OPS });
  assert.equal(history.releases.length, 2);
  const rest = await release.describeRelease(
    { service: "shop", environment: "dev", pageSize: 2, pageToken: history.nextPageToken },
    { headers: OPS },
  );
  assert.ok(rest.releases.length >= 1);
  const otherQuery = await failure(
    release.describeRelease({ service: "shop", environment: "prod", pageToken: history.nextPageToken }, { headers: OPS }),
  );
  assert.equal(otherQuery.code, Code.InvalidArgument);
  assert.match(otherQuery.rawMessage, /asked with other fields/);
});

test("promote, roll back, report and watch", async () => {
  const promoted = await release.promote({ service: "shop", environment: "staging", committer: ALICE }, { headers: OPS });
  assert.equal(promoted.fromEnvironment, "dev");
  const rolled = await release.rollback({ service: "shop", environment: "dev", committer: ALICE }, { headers: OPS });
  assert.equal(rolled.result?.outcome, Outcome.APPLIED);
  const upToDate = await release.release(
    { service: "shop", environment: "dev", source: { case: "artifactId", value: rolled.result!.artifactId }, committer: ALICE },
    { headers: OPS },
  );
  assert.equal(upToDate.result?.outcome, Outcome.ALREADY_UP_TO_DATE);
  assert.equal(upToDate.result?.commitSha, rolled.result?.commitSha, "the release commit on every outcome");

  const stop = new AbortController();
  const events = release.watchEvents({ service: "shop" }, { headers: OPS, signal: stop.signal })[Symbol.asyncIterator]();
  const live = await events.next();
  assert.equal(live.value.event.case, "live");
  const reported = await release.reportDeployment(
    { environment: "dev", revision: rolled.result!.commitSha, state: DeploymentState.DEPLOYED, source: "node" },
    { headers: CI },
  );
  assert.deepEqual(reported.covered.map((c) => c.service), ["shop"]);
  const event = await events.next();
  assert.equal(event.value.event.case, "deploymentReported");
  assert.equal(event.value.event.value.deployment.state, DeploymentState.DEPLOYED);
  stop.abort();
});

test("policies with request ids, and structured errors", async () => {
  const applied = await policy.applyAutoRelease(
    { service: "shop", branch: "fix#42", environment: "dev", committer: ALICE, requestId: "node-1" },
    { headers: OPS },
  );
  assert.equal(applied.replayed, false);
  const again = await policy.applyAutoRelease(
    { service: "shop", branch: "fix#42", environment: "dev", committer: ALICE, requestId: "node-1" },
    { headers: OPS },
  );
  assert.equal(again.replayed, true);
  assert.equal(again.id, applied.id);
  await policy.applyBranchRestriction(
    { service: "shop", environment: "prod", branchRegex: "^master$", committer: ALICE },
    { headers: OPS },
  );
  const listed = await policy.listPolicies({ service: "shop" }, { headers: OPS });
  assert.deepEqual(listed.autoReleases.map((p) => p.branch), ["fix#42"]);

  const restricted = await failure(
    release.release(
      { service: "shop", environment: "prod", source: { case: "branch", value: "fix#42" }, committer: ALICE },
      { headers: OPS },
    ),
  );
  assert.equal(restricted.code, Code.FailedPrecondition);
  const [info] = restricted.findDetails(ErrorInfoSchema);
  assert.equal(info.reason, ErrorReason[ErrorReason.BRANCH_RESTRICTED]);
  assert.equal(info.metadata.policy_id, "branch-restriction-prod");
  assert.equal(info.metadata.environment, "prod");

  const unknown = await failure(release.status({ service: "shpo" }, { headers: OPS }));
  assert.equal(unknown.findDetails(ErrorInfoSchema)[0].metadata.suggestion, "shop");

  const badName = await failure(release.status({ service: "Shop_API" }, { headers: OPS }));
  assert.equal(badName.code, Code.InvalidArgument);
  assert.deepEqual(badName.findDetails(BadRequestSchema)[0].fieldViolations.map((v) => v.field), ["service"]);

  const deleted = await policy.deletePolicies(
    { service: "shop", ids: [applied.id, "branch-restriction-prod"], committer: ALICE, requestId: "node-2" },
    { headers: OPS },
  );
  assert.equal(deleted.deleted, 2);
});

test("gRPC-Web, as a browser calls", async () => {
  const web = createClient(ReleaseService, createGrpcWebTransport({ baseUrl: `http://${address}`, httpVersion: "1.1" }));
  const status = await web.status({ service: "shop" }, { headers: OPS });
  assert.equal(status.service, "shop");
  const refused = await failure(web.status({ service: "shpo" }, { headers: OPS }));
  assert.equal(refused.rawMessage.endsWith('did you mean "shop"?'), true, refused.rawMessage);
});

test("grpc-js shows the server's messages as written", async () => {
  const definition = protoLoader.loadSync("releasemanager/v1/release_service.proto", {
    includeDirs: [join(ROOT, "proto")],
  });
  const loaded = grpc.loadPackageDefinition(definition) as any;
  const client = new loaded.releasemanager.v1.ReleaseService(address, grpc.credentials.createInsecure());
  const metadata = new grpc.Metadata();
  metadata.set("authorization", OPS.authorization);
  const error = await new Promise<grpc.ServiceError>((found, unexpected) =>
    client.Status({ service: "shpo" }, metadata, (err: grpc.ServiceError | null) =>
      err ? found(err) : unexpected(new Error("Status should fail")),
    ),
  );
  client.close();
  assert.equal(error.code, grpc.status.NOT_FOUND);
  assert.equal(
    error.details,
    'unknown service "shpo": no builds and no releases of it in the config repository; did you mean "shop"?',
  );
});
