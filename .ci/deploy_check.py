"""Checks deploy/, the kustomize base, offline: every file its kustomization
lists is valid against Kubernetes' own schemas (kubernetes-validate,
strict: unknown fields are errors), the kustomization lists every manifest
of the folder and nothing else, and the installation keeps what its page
promises (docs/running.md: In Kubernetes): the SSH secret as the original
release manager names it, a ServiceAccount, ConfigMaps for the access rules
and the notifications, a NetworkPolicy, gRPC health probes, resource
requests, a non-root container with a read-only root filesystem.

The base has no transformer but the image's tag, so what `kubectl apply -k`
renders is these files; no renderer is needed to check it.

Run with the Python of `.tools/kubeval` (make deploy-check sets it up).
Exits 1 naming every problem."""

import pathlib
import subprocess
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
VALIDATE = pathlib.Path(sys.executable).parent / "kubernetes-validate"


def main() -> int:
    problems = []
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    listed = kustomization.get("resources", [])
    present = sorted(p.name for p in DEPLOY.glob("*.yaml") if p.name != "kustomization.yaml")
    if sorted(listed) != present:
        problems.append(f"kustomization.yaml lists {sorted(listed)}, the folder holds {present}")
    documents = {}
    for name in listed:
        path = DEPLOY / name
        if not path.exists():
            continue
        result = subprocess.run(
            [str(VALIDATE), "--strict", "--quiet", str(path)],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            problems.append(f"{name}: {(result.stdout + result.stderr).strip()}")
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                documents[(document["kind"], document["metadata"]["name"])] = document
    kinds = {kind for kind, _ in documents}
    for kind in ["ServiceAccount", "Service", "StatefulSet", "NetworkPolicy", "PodDisruptionBudget"]:
        if kind not in kinds:
            problems.append(f"no {kind}")
    for name in ["release-manager-access", "release-manager-notifications"]:
        if ("ConfigMap", name) not in documents:
            problems.append(f"no ConfigMap {name}")
    server = documents.get(("StatefulSet", "release-manager"))
    if server:
        pod = server["spec"]["template"]["spec"]
        container = pod["containers"][0]
        images = [i["name"] for i in kustomization.get("images", [])]
        if container["image"] not in images:
            problems.append(f"the image {container['image']!r} is not among the kustomization's images {images}")
        if pod.get("serviceAccountName") != "release-manager":
            problems.append("the pod does not run as the release-manager ServiceAccount")
        if not pod.get("securityContext", {}).get("runAsNonRoot"):
            problems.append("the pod may run as root (securityContext.runAsNonRoot)")
        context = container.get("securityContext", {})
        if not context.get("readOnlyRootFilesystem"):
            problems.append("the root filesystem is writable (readOnlyRootFilesystem)")
        if context.get("allowPrivilegeEscalation") is not False:
            problems.append("privilege escalation is allowed")
        for probe in ["startupProbe", "readinessProbe", "livenessProbe"]:
            if "grpc" not in container.get(probe, {}):
                problems.append(f"{probe} does not ask the gRPC health service")
        requests = container.get("resources", {}).get("requests", {})
        if not {"cpu", "memory"} <= set(requests):
            problems.append(f"resource requests {requests} lack cpu or memory")
        secrets = {v["secret"]["secretName"] for v in pod.get("volumes", []) if "secret" in v}
        if "release-manager-git-deploy" not in secrets:
            problems.append("the SSH key secret release-manager-git-deploy is not mounted")
        mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
        if "/etc/release-manager/ssh" not in mounts:
            problems.append("the SSH key is not mounted at /etc/release-manager/ssh")
    for problem in problems:
        print(f"deploy/: {problem}", file=sys.stderr)
    if not problems:
        print(f"deploy/: {len(listed)} manifests valid against Kubernetes' schemas, the installation's promises kept")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
