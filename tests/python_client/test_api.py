"""The API as a client in another language sees it: Python stubs generated
from proto/ with grpcio-tools call every RPC of the three services against the
real server binary (on a loopback port, over a bare config repository in a
temporary folder), and check the structured error details, resumable event
streams, paging and replays that the proto's comments promise.

It also checks that hamctl's `--output json` is, for every command, the
API's canonical JSON as protobuf's own `json_format` writes it.

Run by `make python-client-test` (which builds the server and hamctl and
installs the requirements into .tools/python); RELEASE_MANAGER_BIN and
HAMCTL_BIN name the binaries.
"""

import json
import os
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import grpc
from grpc_status import rpc_status
from google.protobuf import json_format
from google.rpc import error_details_pb2

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
GENERATED = tempfile.mkdtemp(prefix="rm-python-stubs-")


def generate_stubs():
    from grpc_tools import protoc
    import grpc_tools

    include = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    proto_dir = os.path.join(ROOT, "proto")
    files = sorted(
        os.path.join("releasemanager", "v1", name)
        for name in os.listdir(os.path.join(proto_dir, "releasemanager", "v1"))
        if name.endswith(".proto")
    )
    code = protoc.main(
        ["protoc", f"-I{proto_dir}", f"-I{include}", f"--python_out={GENERATED}", f"--grpc_python_out={GENERATED}"]
        + files
    )
    if code != 0:
        raise SystemExit(f"protoc failed with {code}")
    sys.path.insert(0, GENERATED)


generate_stubs()

from releasemanager.v1 import access_service_pb2 as access_pb2  # noqa: E402
from releasemanager.v1 import access_service_pb2_grpc as access_grpc  # noqa: E402
from releasemanager.v1 import common_pb2  # noqa: E402
from releasemanager.v1 import errors_pb2  # noqa: E402
from releasemanager.v1 import policy_service_pb2 as policy_pb2  # noqa: E402
from releasemanager.v1 import policy_service_pb2_grpc as policy_grpc  # noqa: E402
from releasemanager.v1 import release_service_pb2 as release_pb2  # noqa: E402
from releasemanager.v1 import release_service_pb2_grpc as release_grpc  # noqa: E402

HAMCTL_TOKEN = "ops-token"
ARTIFACT_TOKEN = "ci-token"
OPS = [("authorization", f"Bearer {HAMCTL_TOKEN}")]
CI = [("authorization", f"Bearer {ARTIFACT_TOKEN}")]
ALICE = common_pb2.Person(name="Alice Operator", email="alice@example.com")
TIMEOUT = 20


def git(cwd, *args):
    env = dict(os.environ)
    env.update(
        GIT_CONFIG_GLOBAL="/dev/null",
        GIT_CONFIG_NOSYSTEM="1",
        GIT_AUTHOR_NAME="CI Bot",
        GIT_AUTHOR_EMAIL="ci@example.com",
        GIT_COMMITTER_NAME="CI Bot",
        GIT_COMMITTER_EMAIL="ci@example.com",
    )
    out = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise AssertionError(f"git {args}: {out.stderr}")
    return out.stdout


def spec(service, branch, artifact_id, n):
    return json.dumps(
        {
            "id": artifact_id,
            "service": service,
            "application": {
                "sha": f"{n:040d}",
                "branch": branch,
                "authorName": "Dana Dev",
                "authorEmail": "dana@example.com",
                "message": f"change {n}",
            },
            "ci": {"jobUrl": f"https://ci.example.com/{n}", "start": "2026-01-01T00:00:00Z", "end": "2026-01-01T00:05:00Z"},
        },
        indent=2,
    )


def config_repo(folder):
    """A bare remote with 3 master builds and a feature build of `shop`,
    committed the way CI does."""
    remote = os.path.join(folder, "config.git")
    work = os.path.join(folder, "work")
    git(folder, "init", "-q", "--bare", "-b", "master", "config.git")
    git(folder, "init", "-q", "-b", "master", "work")
    builds = [("master", n) for n in (1, 2, 3)] + [("feature/x", 1)]
    for branch, n in builds:
        base = os.path.join(work, "builds", "shop", branch)
        shutil.rmtree(base, ignore_errors=True)
        artifact_id = f"{branch.replace('/', '-')}-{n}"
        for env in ("dev", "staging", "prod"):
            os.makedirs(os.path.join(base, env))
            with open(os.path.join(base, env, "deployment.yaml"), "w") as f:
                f.write(f"kind: Deployment\nimage: shop:{artifact_id}\n")
        with open(os.path.join(base, "artifact.json"), "w") as f:
            f.write(spec("shop", branch, artifact_id, n))
        git(work, "add", "-A")
        git(work, "commit", "-q", "-m", f"[shop] build tag {artifact_id}")
    git(work, "push", "-q", remote, "master")
    return remote


class Server:
    """The real server binary on a loopback port."""

    def __init__(self, remote, data):
        binary = os.environ.get("RELEASE_MANAGER_BIN", os.path.join(ROOT, "target", "debug", "release-manager"))
        env = dict(os.environ, NO_COLOR="1", RUST_LOG="info")
        self.process = subprocess.Popen(
            [
                binary, "start", "--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0",
                "--poll-interval", "0", "--config-repo", remote, "--data-dir", data,
                "--hamctl-auth-token", HAMCTL_TOKEN, "--artifact-auth-token", ARTIFACT_TOKEN,
            ],
            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env,
        )
        lines = queue.Queue()
        threading.Thread(target=lambda: [lines.put(l) for l in self.process.stderr], daemon=True).start()
        deadline = time.time() + 60
        while True:
            line = lines.get(timeout=max(0.1, deadline - time.time()))
            match = re.search(r"serving gRPC.*addr=(\S+)", line)
            if match:
                self.address = match.group(1)
                break
        self.channel = grpc.insecure_channel(self.address)
        self.release = release_grpc.ReleaseServiceStub(self.channel)
        self.policy = policy_grpc.PolicyServiceStub(self.channel)
        self.access = access_grpc.AccessServiceStub(self.channel)

    def stop(self):
        self.channel.close()
        self.process.terminate()
        self.process.wait(timeout=30)


def details(error):
    """The google.rpc.Status details of a failed call: (ErrorInfo,
    BadRequest), either None when absent."""
    status = rpc_status.from_call(error)
    info = bad_request = None
    for detail in status.details if status else []:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
    return info, bad_request


class ApiTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.folder = tempfile.mkdtemp(prefix="rm-python-client-")
        cls.remote = config_repo(cls.folder)
        cls.server = Server(cls.remote, os.path.join(cls.folder, "data"))

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        shutil.rmtree(cls.folder, ignore_errors=True)
        shutil.rmtree(GENERATED, ignore_errors=True)

    def call_fails(self, method, request, metadata=OPS):
        with self.assertRaises(grpc.RpcError) as caught:
            method(request, metadata=metadata, timeout=TIMEOUT)
        return caught.exception

    def assert_reason(self, error, code, reason):
        self.assertEqual(error.code(), code, error.details())
        info, _ = details(error)
        self.assertIsNotNone(info, f"an ErrorInfo on {error.details()}")
        self.assertEqual(info.domain, "releasemanager.v1")
        self.assertEqual(info.reason, errors_pb2.ErrorReason.Name(reason))

    def test_01_every_read(self):
        services = self.server.release.ListServices(release_pb2.ListServicesRequest(), metadata=OPS, timeout=TIMEOUT)
        self.assertEqual([s.name for s in services.services], ["shop"])
        status = self.server.release.Status(release_pb2.StatusRequest(service="shop"), metadata=OPS, timeout=TIMEOUT)
        self.assertEqual([e.environment for e in status.environments], ["dev", "staging", "prod"])
        builds = self.server.release.DescribeArtifact(
            release_pb2.DescribeArtifactRequest(service="shop", page_size=10), metadata=OPS, timeout=TIMEOUT
        )
        self.assertEqual([b.artifact_id for b in builds.artifacts], ["feature-x-1", "master-3", "master-2", "master-1"])
        policies = self.server.policy.ListPolicies(policy_pb2.ListPoliciesRequest(service="shop"), metadata=OPS, timeout=TIMEOUT)
        self.assertEqual(len(policies.auto_releases), 0)
        # No single sign-on here: GetSignIn names no issuer, and needs no token.
        sign_in = self.server.access.GetSignIn(access_pb2.GetSignInRequest(), timeout=TIMEOUT)
        self.assertEqual(sign_in.issuer, "")
        who = self.server.access.WhoAmI(access_pb2.WhoAmIRequest(), metadata=OPS, timeout=TIMEOUT)
        self.assertEqual(who.kind, access_pb2.CREDENTIAL_KIND_STATIC_TOKEN)
        self.assertEqual([e.environment for e in who.environments], ["dev", "staging", "prod"])
        self.assertEqual(list(who.environments[2].actions), ["release", "promote", "rollback", "policy"])

    def test_02_writes_and_replays(self):
        first = self.server.release.Release(
            release_pb2.ReleaseRequest(service="shop", environment="dev", branch="master", committer=ALICE, request_id="py-1"),
            metadata=OPS, timeout=TIMEOUT,
        ).result
        self.assertEqual(first.outcome, common_pb2.OUTCOME_APPLIED)
        self.assertEqual(first.artifact_id, "master-3")
        self.assertFalse(first.replayed)
        again = self.server.release.Release(
            release_pb2.ReleaseRequest(service="shop", environment="dev", branch="master", committer=ALICE, request_id="py-1"),
            metadata=OPS, timeout=TIMEOUT,
        ).result
        self.assertTrue(again.replayed, "a retried request id says it was answered from history")
        self.assertEqual(again.commit_sha, first.commit_sha)
        by_id = self.server.release.Release(
            release_pb2.ReleaseRequest(service="shop", environment="dev", artifact_id="master-1", committer=ALICE),
            metadata=OPS, timeout=TIMEOUT,
        ).result
        self.assertEqual(by_id.artifact_id, "master-1")
        promoted = self.server.release.Promote(
            release_pb2.PromoteRequest(service="shop", environment="staging", committer=ALICE), metadata=OPS, timeout=TIMEOUT
        )
        self.assertEqual(promoted.from_environment, "dev")
        self.assertEqual(promoted.result.artifact_id, "master-1")
        rolled = self.server.release.Rollback(
            release_pb2.RollbackRequest(service="shop", environment="dev", committer=ALICE), metadata=OPS, timeout=TIMEOUT
        )
        self.assertEqual(rolled.result.artifact_id, "master-3")
        self.assertEqual(rolled.previous_artifact_id, "master-1")

    def test_03_upload_and_immutable_ids(self):
        files = [
            ("artifact.json", spec("shop", "master", "master-9", 9).encode()),
            ("dev/deployment.yaml", b"kind: Deployment\n"),
        ]
        chunks = lambda files: iter(release_pb2.PushArtifactRequest(path=p, data=d) for p, d in files)
        stored = self.server.release.PushArtifact(chunks(files), metadata=CI, timeout=TIMEOUT)
        self.assertEqual(stored.outcome, common_pb2.OUTCOME_APPLIED)
        again = self.server.release.PushArtifact(chunks(files), metadata=CI, timeout=TIMEOUT)
        self.assertEqual(again.outcome, common_pb2.OUTCOME_ALREADY_UP_TO_DATE)
        self.assertEqual(again.commit_sha, stored.commit_sha)
        other = [files[0], ("dev/deployment.yaml", b"kind: Deployment\nreplicas: 2\n")]
        with self.assertRaises(grpc.RpcError) as caught:
            self.server.release.PushArtifact(chunks(other), metadata=CI, timeout=TIMEOUT)
        self.assert_reason(caught.exception, grpc.StatusCode.ALREADY_EXISTS, errors_pb2.ARTIFACT_EXISTS)
        # The hamctl token is not enough to upload, and a lower-case scheme
        # is the same scheme.
        with self.assertRaises(grpc.RpcError) as caught:
            self.server.release.PushArtifact(chunks(files), metadata=OPS, timeout=TIMEOUT)
        self.assert_reason(caught.exception, grpc.StatusCode.UNAUTHENTICATED, errors_pb2.TOKEN_WRONG)
        lower = [("authorization", f"bearer {ARTIFACT_TOKEN}")]
        self.assertEqual(
            self.server.release.PushArtifact(chunks(files), metadata=lower, timeout=TIMEOUT).outcome,
            common_pb2.OUTCOME_ALREADY_UP_TO_DATE,
        )

    def test_04_error_reasons_and_fields(self):
        missing = self.call_fails(self.server.release.Status, release_pb2.StatusRequest(service="nope"))
        self.assert_reason(missing, grpc.StatusCode.NOT_FOUND, errors_pb2.SERVICE_NOT_FOUND)
        bad_env = self.call_fails(
            self.server.release.Release,
            release_pb2.ReleaseRequest(service="shop", environment="qa", branch="master", committer=ALICE),
        )
        self.assertEqual(bad_env.code(), grpc.StatusCode.INVALID_ARGUMENT)
        _, bad_request = details(bad_env)
        self.assertEqual([v.field for v in bad_request.field_violations], ["environment"])
        no_token = self.call_fails(self.server.release.Status, release_pb2.StatusRequest(service="shop"), metadata=[])
        self.assert_reason(no_token, grpc.StatusCode.UNAUTHENTICATED, errors_pb2.TOKEN_MISSING)
        self.server.policy.ApplyBranchRestriction(
            policy_pb2.ApplyBranchRestrictionRequest(service="shop", environment="prod", branch_regex="^master$", committer=ALICE),
            metadata=OPS, timeout=TIMEOUT,
        )
        restricted = self.call_fails(
            self.server.release.Release,
            release_pb2.ReleaseRequest(service="shop", environment="prod", branch="feature/x", committer=ALICE),
        )
        self.assert_reason(restricted, grpc.StatusCode.FAILED_PRECONDITION, errors_pb2.BRANCH_RESTRICTED)
        applied = self.server.policy.ApplyAutoRelease(
            policy_pb2.ApplyAutoReleaseRequest(service="shop", branch="master", environment="dev", committer=ALICE),
            metadata=OPS, timeout=TIMEOUT,
        )
        self.assertEqual(applied.id, "auto-release-master-dev")
        deleted = self.server.policy.DeletePolicies(
            policy_pb2.DeletePoliciesRequest(service="shop", ids=[applied.id, "branch-restriction-prod"], committer=ALICE),
            metadata=OPS, timeout=TIMEOUT,
        )
        self.assertEqual(deleted.deleted, 2)

    def test_05_paging(self):
        for n in range(3):
            for artifact in ("master-1", "master-2"):
                self.server.release.Release(
                    release_pb2.ReleaseRequest(service="shop", environment="prod", artifact_id=artifact, committer=ALICE),
                    metadata=OPS, timeout=TIMEOUT,
                )
        everything = self.server.release.DescribeRelease(
            release_pb2.DescribeReleaseRequest(service="shop", environment="prod", page_size=1000), metadata=OPS, timeout=TIMEOUT
        )
        self.assertEqual(everything.next_page_token, "")
        seen, token = [], ""
        while True:
            page = self.server.release.DescribeRelease(
                release_pb2.DescribeReleaseRequest(service="shop", environment="prod", page_size=4, page_token=token),
                metadata=OPS, timeout=TIMEOUT,
            )
            self.assertLessEqual(len(page.releases), 4)
            seen.extend(r.commit_sha for r in page.releases)
            token = page.next_page_token
            if not token:
                break
        self.assertEqual(seen, [r.commit_sha for r in everything.releases])
        self.assertGreaterEqual(len(seen), 6)
        bad = self.call_fails(
            self.server.release.DescribeRelease,
            release_pb2.DescribeReleaseRequest(service="shop", environment="prod", page_token="garbage"),
        )
        _, bad_request = details(bad)
        self.assertEqual([v.field for v in bad_request.field_violations], ["page_token"])

    def test_06_events_resume_from_a_cursor(self):
        stream = self.server.release.WatchEvents(release_pb2.WatchEventsRequest(service="shop"), metadata=OPS, timeout=TIMEOUT)
        live = next(stream)
        self.assertEqual(live.WhichOneof("event"), "live")
        self.server.release.Release(
            release_pb2.ReleaseRequest(service="shop", environment="staging", artifact_id="master-2", committer=ALICE),
            metadata=OPS, timeout=TIMEOUT,
        )
        first = next(stream)
        self.assertEqual(first.WhichOneof("event"), "released")
        self.assertTrue(first.cursor.startswith(first.commit_sha))
        stream.cancel()
        # Two more releases while nobody watches; a new subscription from the
        # cursor gets them, then says it is live.
        for artifact in ("master-3", "master-1"):
            self.server.release.Release(
                release_pb2.ReleaseRequest(service="shop", environment="staging", artifact_id=artifact, committer=ALICE),
                metadata=OPS, timeout=TIMEOUT,
            )
        resumed = self.server.release.WatchEvents(
            release_pb2.WatchEventsRequest(service="shop", since=first.cursor), metadata=OPS, timeout=TIMEOUT
        )
        missed = [next(resumed), next(resumed)]
        self.assertEqual([e.released.artifact_id for e in missed], ["master-3", "master-1"])
        marker = next(resumed)
        self.assertEqual(marker.WhichOneof("event"), "live")
        self.assertEqual(marker.live.replayed, 2)
        resumed.cancel()
        unknown = self.server.release.WatchEvents(
            release_pb2.WatchEventsRequest(since="0" * 40), metadata=OPS, timeout=TIMEOUT
        )
        with self.assertRaises(grpc.RpcError) as caught:
            next(unknown)
        self.assert_reason(caught.exception, grpc.StatusCode.NOT_FOUND, errors_pb2.CURSOR_NOT_FOUND)

    def test_07_deployment_reports(self):
        released = self.server.release.Release(
            release_pb2.ReleaseRequest(service="shop", environment="prod", artifact_id="master-2", committer=ALICE),
            metadata=OPS, timeout=TIMEOUT,
        ).result
        stream = self.server.release.WatchEvents(
            release_pb2.WatchEventsRequest(service="shop", environment="prod"), metadata=OPS, timeout=TIMEOUT
        )
        self.assertEqual(next(stream).WhichOneof("event"), "live")
        # The machine role reports; the hamctl token is not enough.
        refused = self.call_fails(
            self.server.release.ReportDeployment,
            release_pb2.ReportDeploymentRequest(environment="prod", revision=released.commit_sha,
                                                state=release_pb2.DEPLOYMENT_STATE_DEPLOYED),
        )
        self.assert_reason(refused, grpc.StatusCode.UNAUTHENTICATED, errors_pb2.TOKEN_WRONG)
        answer = self.server.release.ReportDeployment(
            release_pb2.ReportDeploymentRequest(environment="prod", revision=f"main@sha1:{released.commit_sha}",
                                                state=release_pb2.DEPLOYMENT_STATE_FAILED, message="OOMKilled",
                                                source="python"),
            metadata=CI, timeout=TIMEOUT,
        )
        self.assertEqual([c.service for c in answer.covered], ["shop"])
        event = next(stream)
        self.assertEqual(event.WhichOneof("event"), "deployment_reported")
        self.assertEqual(event.deployment_reported.deployment.message, "OOMKilled")
        stream.cancel()
        status = self.server.release.Status(release_pb2.StatusRequest(service="shop"), metadata=OPS, timeout=TIMEOUT)
        prod = [e for e in status.environments if e.environment == "prod"][0]
        self.assertEqual(prod.deployment.state, release_pb2.DEPLOYMENT_STATE_FAILED)
        self.assertEqual(prod.deployment.revision, released.commit_sha)
        self.assertEqual(prod.deployment.source, "python")
        unknown = self.call_fails(
            self.server.release.ReportDeployment,
            release_pb2.ReportDeploymentRequest(environment="prod", revision="0" * 40,
                                                state=release_pb2.DEPLOYMENT_STATE_DEPLOYED),
            metadata=CI,
        )
        self.assert_reason(unknown, grpc.StatusCode.NOT_FOUND, errors_pb2.REVISION_NOT_FOUND)


    def hamctl_json(self, *args):
        """hamctl's `--output json` of one command, parsed."""
        binary = os.environ.get("HAMCTL_BIN", os.path.join(ROOT, "target", "debug", "hamctl"))
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HAMCTL_AUTH_TOKEN": HAMCTL_TOKEN,
            "GIT_CONFIG_GLOBAL": "/dev/null",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_COMMITTER_NAME": ALICE.name,
            "GIT_COMMITTER_EMAIL": ALICE.email,
            "NO_COLOR": "1",
        }
        out = subprocess.run(
            [binary, "--server", f"http://{self.server.address}", "--output", "json", *args],
            env=env, capture_output=True, text=True, timeout=60,
        )
        self.assertEqual(out.returncode, 0, out.stderr)
        return [json.loads(line) for line in out.stdout.splitlines()] if args[0] == "watch" else json.loads(out.stdout)

    def assert_canonical(self, printed, message_type, answer=None):
        """`printed` is exactly protobuf's canonical JSON of a `message_type`
        (unknown fields refused), and of `answer` when given."""
        parsed = json_format.Parse(json.dumps(printed), message_type())
        self.assertEqual(printed, json_format.MessageToDict(parsed))
        if answer is not None:
            self.assertEqual(printed, json_format.MessageToDict(answer))

    def test_08_hamctl_json_is_the_apis_json(self):
        call = dict(metadata=OPS, timeout=TIMEOUT)
        self.assert_canonical(
            self.hamctl_json("status", "--service", "shop"), release_pb2.StatusResponse,
            self.server.release.Status(release_pb2.StatusRequest(service="shop"), **call),
        )
        self.assert_canonical(
            self.hamctl_json("services"), release_pb2.ListServicesResponse,
            self.server.release.ListServices(release_pb2.ListServicesRequest(page_size=1000), **call),
        )
        self.assert_canonical(
            self.hamctl_json("describe", "release", "--service", "shop", "--env", "prod", "--count", "3"),
            release_pb2.DescribeReleaseResponse,
            self.server.release.DescribeRelease(
                release_pb2.DescribeReleaseRequest(service="shop", environment="prod", page_size=3), **call
            ),
        )
        self.assert_canonical(
            self.hamctl_json("describe", "artifact", "--service", "shop", "--count", "2"),
            release_pb2.DescribeArtifactResponse,
            self.server.release.DescribeArtifact(release_pb2.DescribeArtifactRequest(service="shop", page_size=2), **call),
        )
        applied = self.hamctl_json("policy", "--service", "shop", "apply", "auto-release", "--branch", "master", "--env", "dev")
        self.assert_canonical(applied, policy_pb2.ApplyAutoReleaseResponse)
        restricted = self.hamctl_json(
            "policy", "--service", "shop", "apply", "branch-restriction", "--env", "prod", "--branch-regex", "^master$"
        )
        self.assert_canonical(restricted, policy_pb2.ApplyBranchRestrictionResponse)
        self.assert_canonical(
            self.hamctl_json("policy", "--service", "shop", "list"), policy_pb2.ListPoliciesResponse,
            self.server.policy.ListPolicies(policy_pb2.ListPoliciesRequest(service="shop"), **call),
        )
        self.assert_canonical(
            self.hamctl_json("policy", "--service", "shop", "delete", applied["id"], restricted["id"]),
            policy_pb2.DeletePoliciesResponse,
        )
        released = self.hamctl_json("release", "--service", "shop", "--env", "dev", "--artifact", "master-2")
        self.assert_canonical(released, release_pb2.ReleaseResponse)
        self.assertEqual(released["result"]["intent"], "RELEASE_INTENT_RELEASE_ARTIFACT")
        self.assert_canonical(
            self.hamctl_json("promote", "--service", "shop", "--env", "staging"), release_pb2.PromoteResponse
        )
        self.assert_canonical(
            self.hamctl_json("rollback", "--service", "shop", "--env", "dev"), release_pb2.RollbackResponse
        )
        head = self.server.release.DescribeRelease(
            release_pb2.DescribeReleaseRequest(service="shop", environment="dev", page_size=3), **call
        ).releases
        events = self.hamctl_json("watch", "--service", "shop", "--since", head[-1].commit_sha, "--max-events", "2")
        self.assertEqual(len(events), 2)
        for event in events:
            self.assert_canonical(event, release_pb2.WatchEventsResponse)
        self.assert_canonical(
            self.hamctl_json("whoami"), access_pb2.WhoAmIResponse,
            self.server.access.WhoAmI(access_pb2.WhoAmIRequest(), **call),
        )


if __name__ == "__main__":
    unittest.main(verbosity=2)
