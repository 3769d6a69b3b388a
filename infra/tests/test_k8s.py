"""The Kubernetes manifests in infra/k8s, checked offline.

Each overlay is rendered by the small kustomize renderer below (only the
kustomization features infra/k8s uses; anything else is an error, so nothing
is skipped in silence), then:

- every built-in object is validated against the Kubernetes OpenAPI schemas
  that the PyPI package kubernetes-validate bundles (strict: unknown fields
  fail);
- KEDA's ScaledObject and TriggerAuthentication, and the External Secrets
  Operator's ExternalSecret and SecretStore, are validated against JSON
  Schemas derived from their CRDs (infra/tests/schemas), including the
  aws-sqs-queue trigger's metadata keys;
- the invariants longhaul depends on hold: probes, zone spread, hardening,
  one Deployment and one ScaledObject per lane watching that lane's queue,
  grace periods above the workers' shutdown grace, the migrations Job.

The last tests break rendered manifests on purpose and check that each
check notices.
"""

from __future__ import annotations

import copy
import functools
import json
import re
import shutil
import subprocess
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

TESTS = Path(__file__).resolve().parent
INFRA = TESTS.parent
REPO = INFRA.parent
K8S = INFRA / "k8s"
SCHEMAS = TESTS / "schemas"

OVERLAYS = ["staging", "prod"]
# The Kubernetes version whose bundled schemas the manifests must satisfy.
K8S_VERSION = "1.31"
NAMESPACE = "longhaul"
# Lane -> the worker's default concurrency (README, Jobs and lanes).
LANES = {"video": 1, "reports": 4, "email": 16, "refresh": 8, "data": 2, "default": 64}
REQUIRED_SQS_METADATA = {"queueURL", "queueLength", "activationQueueLength", "scaleOnInFlight", "awsRegion"}
PLACEHOLDER = "REPLACED-BY-OVERLAY"
WORKER_PORT = 9090
API_PORT = 8080

# Custom resources -> the JSON Schema derived from their CRD.
CRD_SCHEMAS = {
    ("keda.sh/v1alpha1", "ScaledObject"): "keda-scaledobject.schema.json",
    ("keda.sh/v1alpha1", "TriggerAuthentication"): "keda-triggerauthentication.schema.json",
    ("external-secrets.io/v1", "ExternalSecret"): "externalsecrets-externalsecret.schema.json",
    ("external-secrets.io/v1", "SecretStore"): "externalsecrets-secretstore.schema.json",
}
# API groups served by Kubernetes itself ("" is the core group).
BUILTIN_GROUPS = {"", "apps", "batch", "autoscaling", "policy", "networking.k8s.io", "rbac.authorization.k8s.io"}


# --------------------------------------------------------------------------
# A kustomize subset
# --------------------------------------------------------------------------


class KustomizeError(Exception):
    """A kustomization this renderer cannot render exactly as kustomize would."""


KUSTOMIZATION_FIELDS = {
    "Kustomization": {
        "apiVersion",
        "kind",
        "resources",
        "components",
        "namespace",
        "images",
        "patches",
        "replacements",
    },
    "Component": {"apiVersion", "kind", "resources", "patches", "replacements"},
}
KUSTOMIZATION_API = {
    "Kustomization": "kustomize.config.k8s.io/v1beta1",
    "Component": "kustomize.config.k8s.io/v1alpha1",
}
# Kinds that have no namespace. Namespace itself is renamed by the namespace
# transformer (as kustomize does); any other is refused rather than guessed.
CLUSTER_SCOPED = {
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "PersistentVolume",
    "StorageClass",
    "PriorityClass",
    "APIService",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
    "ClusterSecretStore",
    "ClusterTriggerAuthentication",
}
# Strategic merge: list fields of built-in kinds merged by key (their
# patchMergeKey), and list fields replaced whole (no merge strategy). A list
# field in neither set is refused: its semantics are not implemented.
SMP_MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "topologySpreadConstraints": "topologyKey",
}
SMP_ATOMIC_LISTS = {"args", "command", "tolerations", "drop", "add", "matchLabelKeys"}


def api_group(api_version: str) -> str:
    return api_version.split("/")[0] if "/" in api_version else ""


def object_id(obj: dict) -> tuple:
    meta = obj["metadata"]
    return (api_group(obj["apiVersion"]), obj["kind"], meta.get("namespace"), meta["name"])


def describe(obj: dict) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def read_objects(path: Path) -> list[dict]:
    objects = []
    for doc in yaml.safe_load_all(path.read_text()):
        if doc is None:
            continue
        if not isinstance(doc, dict) or not {"apiVersion", "kind", "metadata"} <= doc.keys():
            raise KustomizeError(f"{path}: not a Kubernetes object: {str(doc)[:80]}")
        if not doc["metadata"].get("name"):
            raise KustomizeError(f"{path}: {doc['kind']} without metadata.name")
        objects.append(doc)
    return objects


def inside(root: Path, path: Path) -> bool:
    return path == root or root in path.parents


def build(root: Path) -> list[dict]:
    """Renders the kustomization in `root`, as `kustomize build root` would."""
    return _build(root.resolve(), "Kustomization", [])


def _build(root: Path, expected_kind: str, accumulated: list[dict]) -> list[dict]:
    found = [
        root / name for name in ("kustomization.yaml", "kustomization.yml", "Kustomization") if (root / name).exists()
    ]
    if len(found) != 1:
        raise KustomizeError(f"{root}: expected exactly one kustomization file, found {len(found)}")
    kust = yaml.safe_load(found[0].read_text()) or {}
    kind = kust.get("kind", "Kustomization")
    if kind != expected_kind:
        raise KustomizeError(f"{found[0]}: kind {kind}, expected {expected_kind}")
    if kust.get("apiVersion") != KUSTOMIZATION_API[kind]:
        raise KustomizeError(f"{found[0]}: apiVersion {kust.get('apiVersion')!r}, expected {KUSTOMIZATION_API[kind]}")
    unsupported = set(kust) - KUSTOMIZATION_FIELDS[kind]
    if unsupported:
        raise KustomizeError(f"{found[0]}: unsupported fields {sorted(unsupported)}")

    objects = list(accumulated)
    for entry in kust.get("resources", []):
        path = (root / entry).resolve()
        if path.is_dir():
            objects += _build(path, "Kustomization", [])
        elif path.is_file():
            # kustomize's default load restrictor: files only from inside the root.
            if not inside(root, path):
                raise KustomizeError(f"{found[0]}: resource file {entry} is outside {root}")
            objects += read_objects(path)
        else:
            raise KustomizeError(f"{found[0]}: resource {entry} does not exist")
    check_unique(objects, found[0])

    # Components run after resources, before this kustomization's transformers.
    for entry in kust.get("components", []):
        objects = _build((root / entry).resolve(), "Component", objects)

    # kustomize's order of built-in transformers: patches, namespace, images, replacements.
    for patch in kust.get("patches", []):
        apply_patch(objects, patch, root)
    if "namespace" in kust:
        set_namespace(objects, kust["namespace"])
    for image in kust.get("images", []):
        set_image(objects, image)
    for replacement in kust.get("replacements", []):
        apply_replacement(objects, replacement)
    check_unique(objects, found[0])
    return objects


def check_unique(objects: list[dict], where: Path) -> None:
    seen = set()
    for obj in objects:
        oid = object_id(obj)
        if oid in seen:
            raise KustomizeError(f"{where}: two objects with the id {oid}")
        seen.add(oid)


def apply_patch(objects: list[dict], entry: dict, root: Path) -> None:
    if not isinstance(entry, dict) or set(entry) - {"path", "patch"} or len(entry) != 1:
        raise KustomizeError(f"{root}: unsupported patch entry (only one of path or patch, no target): {entry}")
    if "path" in entry:
        path = (root / entry["path"]).resolve()
        if not inside(root, path):
            raise KustomizeError(f"{root}: patch {entry['path']} is outside the kustomization")
        text = path.read_text()
    else:
        text = entry["patch"]
    docs = [d for d in yaml.safe_load_all(text) if d is not None]
    if len(docs) != 1 or not isinstance(docs[0], dict):
        raise KustomizeError(f"{root}: only single strategic-merge patches are supported (no JSON 6902): {text[:80]}")
    patch = docs[0]
    if not {"apiVersion", "kind", "metadata"} <= patch.keys() or "name" not in patch["metadata"]:
        raise KustomizeError(f"{root}: a strategic-merge patch needs apiVersion, kind and metadata.name")
    matches = [
        o
        for o in objects
        if o["kind"] == patch["kind"]
        and o["apiVersion"] == patch["apiVersion"]
        and o["metadata"]["name"] == patch["metadata"]["name"]
        # kustomize compares namespaces with "" meaning "default": a patch
        # that names none finds nothing in namespace longhaul.
        and (patch["metadata"].get("namespace") or "default") == (o["metadata"].get("namespace") or "default")
    ]
    if len(matches) != 1:
        raise KustomizeError(
            f"{root}: patch for {patch['kind']}/{patch['metadata']['name']} matches {len(matches)} objects"
        )
    target = matches[0]
    builtin = api_group(target["apiVersion"]) in BUILTIN_GROUPS
    body = {k: v for k, v in patch.items() if k not in ("apiVersion", "kind")}
    merged = strategic_merge(target, body, builtin, describe(target))
    target.clear()
    target.update(merged)


def strategic_merge(base, patch, builtin: bool, where: str):
    if not isinstance(patch, dict) or not isinstance(base, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(base)
    for key, value in patch.items():
        here = f"{where}.{key}"
        if key.startswith("$"):
            raise KustomizeError(f"{here}: strategic-merge directives are not supported")
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict):
            out[key] = strategic_merge(out.get(key) or {}, value, builtin, here)
        elif isinstance(value, list):
            out[key] = merge_list(out.get(key), value, key, builtin, here)
        else:
            out[key] = value
    return out


def merge_list(base: list | None, patch: list, key: str, builtin: bool, where: str) -> list:
    if not builtin:
        # kustomize merges a custom resource's list by "name" when its items
        # have one, and replaces it otherwise. Only the second is implemented.
        if any(isinstance(item, dict) and "name" in item for item in patch + (base or [])):
            raise KustomizeError(f"{where}: merging a custom resource's list by name is not supported")
        return copy.deepcopy(patch)
    if key in SMP_ATOMIC_LISTS:
        return copy.deepcopy(patch)
    if key not in SMP_MERGE_KEYS:
        raise KustomizeError(f"{where}: no strategic-merge rule for the list field {key!r}")
    merge_key = SMP_MERGE_KEYS[key]
    out = copy.deepcopy(base or [])
    for item in patch:
        if not isinstance(item, dict) or merge_key not in item:
            raise KustomizeError(f"{where}: every item must have its merge key {merge_key!r}")
        existing = [i for i, old in enumerate(out) if old.get(merge_key) == item[merge_key]]
        if existing:
            out[existing[0]] = strategic_merge(out[existing[0]], item, builtin, f"{where}[{item[merge_key]}]")
        else:
            out.append(copy.deepcopy(item))
    return out


def set_namespace(objects: list[dict], namespace: str) -> None:
    for obj in objects:
        if obj["kind"] == "Namespace" and obj["apiVersion"] == "v1":
            obj["metadata"]["name"] = namespace
        elif obj["kind"] in CLUSTER_SCOPED or obj["kind"] in ("RoleBinding",):
            raise KustomizeError(
                f"{describe(obj)}: the namespace transformer's handling of {obj['kind']} is not implemented"
            )
        else:
            obj["metadata"]["namespace"] = namespace


IMAGE_RE = re.compile(r"^(?P<name>[^@]+?)(?::(?P<tag>[\w][\w.-]{0,127}))?(?:@(?P<digest>sha256:[0-9a-f]{64}))?$")


def set_image(objects: list[dict], image: dict) -> None:
    unsupported = set(image) - {"name", "newName", "newTag", "digest"}
    if unsupported or "name" not in image:
        raise KustomizeError(f"images entry {image}: unsupported fields {sorted(unsupported)} or no name")
    for field in ("newName", "newTag", "digest"):
        if field in image and not isinstance(image[field], str):
            raise KustomizeError(f"images entry {image['name']}: {field} must be a string (quote it)")

    def visit(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("containers", "initContainers") and isinstance(value, list):
                    for container in value:
                        retag(container)
                else:
                    visit(value)
        elif isinstance(node, list):
            for item in node:
                visit(item)

    def retag(container: dict) -> None:
        match = IMAGE_RE.match(container.get("image", ""))
        if not match:
            raise KustomizeError(f"cannot parse the image {container.get('image')!r}")
        if match["name"] != image["name"]:
            return
        name = image.get("newName", match["name"])
        if "digest" in image:
            container["image"] = f"{name}@{image['digest']}"
        elif "newTag" in image:
            container["image"] = f"{name}:{image['newTag']}"
        else:
            rest = (f":{match['tag']}" if match["tag"] else "") + (f"@{match['digest']}" if match["digest"] else "")
            container["image"] = name + rest

    visit(objects)


def split_field_path(path: str) -> list[str]:
    parts = re.findall(r"\[[^\]]*\]|[^.\[\]]+", path)
    if ".".join(parts) != path:
        raise KustomizeError(f"unsupported field path {path!r}")
    return parts


def find_field(obj: dict, path: str):
    """The (parent, key) of the field at path, a kustomize field path
    (`a.b.[k=v].c`, `a.0.b`); every step must match exactly one node."""
    parts = split_field_path(path)
    node = obj
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if part.startswith("["):
            selector = re.fullmatch(r"\[([^=\]]+)=([^\]]*)\]", part)
            if not selector or not isinstance(node, list):
                raise KustomizeError(f"{describe(obj)}: unsupported selector {part} in {path}")
            matches = [
                i for i, item in enumerate(node) if isinstance(item, dict) and str(item.get(selector[1])) == selector[2]
            ]
            if len(matches) != 1:
                raise KustomizeError(f"{describe(obj)}: {part} in {path} matches {len(matches)} items")
            key = matches[0]
        elif isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise KustomizeError(f"{describe(obj)}: no item {part} in {path}")
            key = int(part)
        elif isinstance(node, dict):
            if part not in node:
                raise KustomizeError(f"{describe(obj)}: no field {path!r}")
            key = part
        else:
            raise KustomizeError(f"{describe(obj)}: {path} goes through a scalar")
        if last:
            return node, key
        node = node[key]
    raise KustomizeError(f"empty field path {path!r}")


def apply_replacement(objects: list[dict], replacement: dict) -> None:
    if set(replacement) != {"source", "targets"}:
        raise KustomizeError(f"replacement {replacement}: only inline source and targets are supported")
    source = replacement["source"]
    if set(source) - {"kind", "name", "fieldPath"} or not {"kind", "name"} <= source.keys():
        raise KustomizeError(f"replacement source {source}: only kind, name and fieldPath are supported")
    sources = [o for o in objects if o["kind"] == source["kind"] and o["metadata"]["name"] == source["name"]]
    if len(sources) != 1:
        raise KustomizeError(f"replacement source {source['kind']}/{source['name']} matches {len(sources)} objects")
    parent, key = find_field(sources[0], source.get("fieldPath", "metadata.name"))
    value = parent[key]
    if isinstance(value, (dict, list)) or value is None:
        raise KustomizeError(f"replacement source {source}: only scalar values are supported")
    for target in replacement["targets"]:
        if set(target) - {"select", "fieldPaths"} or set(target.get("select", {})) - {"kind", "name"}:
            raise KustomizeError(f"replacement target {target}: only select (kind, name) and fieldPaths are supported")
        selected = [
            o
            for o in objects
            if o["kind"] == target["select"].get("kind", o["kind"])
            and o["metadata"]["name"] == target["select"].get("name", o["metadata"]["name"])
        ]
        if not selected:
            raise KustomizeError(f"replacement target {target['select']} selects nothing")
        for obj in selected:
            for field_path in target.get("fieldPaths", ["metadata.name"]):
                tparent, tkey = find_field(obj, field_path)
                if isinstance(tparent[tkey], (dict, list)):
                    raise KustomizeError(f"{describe(obj)}: {field_path} is not a scalar")
                tparent[tkey] = str(value) if isinstance(tparent[tkey], str) else value


@functools.cache
def _rendered(overlay: str) -> str:
    return json.dumps(build(K8S / "overlays" / overlay))


def render(overlay: str) -> list[dict]:
    """A fresh copy of the overlay's objects (tests may change them)."""
    return json.loads(_rendered(overlay))


# --------------------------------------------------------------------------
# Schema validation
# --------------------------------------------------------------------------


@functools.cache
def crd_validator(file: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((SCHEMAS / file).read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def schema_errors(obj: dict) -> list[str]:
    """Why obj does not match its schema: Kubernetes' for built-in kinds, the
    CRD-derived one for custom resources. An object with neither is an error."""
    where = describe(obj)
    key = (obj["apiVersion"], obj["kind"])
    if key in CRD_SCHEMAS:
        errors = [
            f"{where}: {'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
            for e in crd_validator(CRD_SCHEMAS[key]).iter_errors(obj)
        ]
        return errors + crd_rule_errors(obj)
    if api_group(obj["apiVersion"]) not in BUILTIN_GROUPS:
        return [f"{where}: {obj['apiVersion']} is neither built in nor has a CRD schema in infra/tests/schemas"]
    try:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as e:
        return [f"{where}: {'.'.join(map(str, e.path)) or '<root>'}: {e.message}"]
    except kubernetes_validate.SchemaNotFoundError as e:
        return [f"{where}: {e.message}"]
    return []


def crd_rule_errors(obj: dict) -> list[str]:
    """The CRDs' CEL rules (x-kubernetes-validations), which JSON Schema cannot say."""
    if obj["kind"] == "ScaledObject":
        spec = obj["spec"]
        # keda.sh_scaledobjects.yaml: minReplicaCount <= maxReplicaCount (default 100).
        if "minReplicaCount" in spec and spec["minReplicaCount"] > spec.get("maxReplicaCount", 100):
            return [f"{describe(obj)}: minReplicaCount must be less than or equal to maxReplicaCount"]
    if obj["kind"] == "SecretStore":
        # external-secrets.io_secretstores.yaml, the aws provider's customSessionTags.
        tags = obj["spec"]["provider"].get("aws", {}).get("customSessionTags", {})
        if {"esoNamespace", "esoStoreName", "esoStoreKind"} & set(tags):
            return [f"{describe(obj)}: customSessionTags cannot contain the reserved keys"]
    return []


# --------------------------------------------------------------------------
# Invariants
# --------------------------------------------------------------------------


def by_kind(objects: list[dict], kind: str) -> list[dict]:
    return [o for o in objects if o["kind"] == kind]


def named(objects: list[dict], kind: str, name: str) -> dict | None:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return found[0] if len(found) == 1 else None


def env_value(container: dict, name: str):
    for item in container.get("env", []):
        if item["name"] == name:
            return item.get("value")
    return None


def selects(selector: dict, labels: dict) -> bool:
    if set(selector) - {"matchLabels"}:
        raise AssertionError(f"selector {selector}: only matchLabels is understood by these tests")
    wanted = selector.get("matchLabels", {})
    return bool(wanted) and all(labels.get(k) == v for k, v in wanted.items())


def port_number(container: dict, port) -> int | None:
    if isinstance(port, int):
        return port
    for item in container.get("ports", []):
        if item.get("name") == port:
            return item["containerPort"]
    return None


def workloads(objects: list[dict]) -> list[dict]:
    return by_kind(objects, "Deployment") + by_kind(objects, "Job")


def probe_problems(objects: list[dict]) -> list[str]:
    problems = []
    for dep in by_kind(objects, "Deployment"):
        where = describe(dep)
        expected_port = API_PORT if dep["metadata"]["name"] == "longhaul-api" else WORKER_PORT
        for c in dep["spec"]["template"]["spec"]["containers"]:
            for probe, path in (
                ("readinessProbe", "/readyz"),
                ("livenessProbe", "/healthz"),
                ("startupProbe", "/healthz"),
            ):
                get = (c.get(probe) or {}).get("httpGet")
                if not get:
                    problems.append(f"{where}/{c['name']}: no HTTP {probe}")
                    continue
                if get.get("path") != path:
                    problems.append(f"{where}/{c['name']}: {probe} on {get.get('path')}, not {path}")
                if port_number(c, get.get("port")) != expected_port:
                    problems.append(f"{where}/{c['name']}: {probe} not on port {expected_port}")
    return problems


def spread_problems(objects: list[dict]) -> list[str]:
    problems = []
    for dep in by_kind(objects, "Deployment"):
        where = describe(dep)
        pod = dep["spec"]["template"]
        constraints = pod["spec"].get("topologySpreadConstraints", [])
        keyed = {c["topologyKey"]: c for c in constraints}
        for key in ("topology.kubernetes.io/zone", "kubernetes.io/hostname"):
            constraint = keyed.get(key)
            if not constraint:
                problems.append(f"{where}: no topology spread on {key}")
            elif not selects(constraint.get("labelSelector", {}), pod["metadata"]["labels"]):
                problems.append(f"{where}: the {key} spread does not select the Deployment's own pods")
            elif constraint.get("maxSkew") != 1:
                problems.append(f"{where}: the {key} spread allows a skew of {constraint.get('maxSkew')}")
        zone = keyed.get("topology.kubernetes.io/zone", {})
        if dep["metadata"]["name"] == "longhaul-api" and zone.get("whenUnsatisfiable") != "DoNotSchedule":
            problems.append(f"{where}: the API's zone spread must be DoNotSchedule")
    return problems


def hardening_problems(objects: list[dict]) -> list[str]:
    problems = []
    for work in workloads(objects):
        where = describe(work)
        pod = work["spec"]["template"]["spec"]
        pod_sc = pod.get("securityContext", {})
        if pod.get("automountServiceAccountToken") is not False:
            problems.append(f"{where}: mounts a service account token")
        if (pod_sc.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
            problems.append(f"{where}: no RuntimeDefault seccomp profile for the pod")
        for flag in ("hostNetwork", "hostPID", "hostIPC"):
            if pod.get(flag):
                problems.append(f"{where}: {flag}")
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        for v in volumes.values():
            if set(v) - {"name", "emptyDir", "configMap", "secret", "projected"}:
                problems.append(f"{where}: volume {v['name']} is not an emptyDir, ConfigMap or Secret")
        for c in pod.get("initContainers", []) + pod["containers"]:
            cw = f"{where}/{c['name']}"
            sc = c.get("securityContext", {})
            if sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is not True:
                problems.append(f"{cw}: runAsNonRoot is not true")
            if sc.get("runAsUser", pod_sc.get("runAsUser")) != 10001:
                problems.append(f"{cw}: does not run as uid 10001")
            if sc.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{cw}: the root filesystem is writable")
            if sc.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{cw}: allowPrivilegeEscalation is not false")
            if sc.get("privileged"):
                problems.append(f"{cw}: privileged")
            caps = sc.get("capabilities", {})
            if "ALL" not in caps.get("drop", []) or caps.get("add"):
                problems.append(f"{cw}: capabilities are not all dropped")
            resources = c.get("resources", {})
            for kind in ("requests", "limits"):
                for resource in ("cpu", "memory"):
                    if resource not in resources.get(kind, {}):
                        problems.append(f"{cw}: no {resource} {kind}")
            tmp = [m for m in c.get("volumeMounts", []) if m["mountPath"] == "/tmp"]
            tmp_volume = volumes.get(tmp[0]["name"], {}) if tmp else {}
            if not (tmp_volume.get("emptyDir") or {}).get("sizeLimit"):
                problems.append(f"{cw}: /tmp is not a sized emptyDir")
    return problems


def lane_problems(objects: list[dict]) -> list[str]:
    problems = []
    deployments = [d for d in by_kind(objects, "Deployment") if d["metadata"]["name"].startswith("longhaul-worker-")]
    lanes_served: dict[str, list[str]] = {}
    for dep in deployments:
        for c in dep["spec"]["template"]["spec"]["containers"]:
            args = c.get("args", [])
            if args[:1] != ["worker"] or "--lanes" not in args:
                problems.append(f"{describe(dep)}: does not run `worker --lanes …`")
                continue
            lanes = args[args.index("--lanes") + 1].split(",")
            for lane in lanes:
                lanes_served.setdefault(lane, []).append(dep["metadata"]["name"])
            if len(lanes) != 1 or dep["metadata"]["name"] != f"longhaul-worker-{lanes[0]}":
                problems.append(f"{describe(dep)}: serves {lanes}; a worker Deployment serves its own lane only")
    for lane in LANES:
        if len(lanes_served.get(lane, [])) != 1:
            problems.append(f"lane {lane}: served by {lanes_served.get(lane, [])}, expected exactly one Deployment")
    for lane in set(lanes_served) - set(LANES):
        problems.append(f"lane {lane}: not a longhaul lane")

    scaled = by_kind(objects, "ScaledObject")
    for lane in LANES:
        name = f"longhaul-worker-{lane}"
        mine = [s for s in scaled if s["spec"]["scaleTargetRef"]["name"] == name]
        if len(mine) != 1:
            problems.append(f"lane {lane}: {len(mine)} ScaledObjects target {name}, expected one")
            continue
        so = mine[0]
        ref = so["spec"]["scaleTargetRef"]
        if ref.get("kind", "Deployment") != "Deployment" or ref.get("apiVersion", "apps/v1") != "apps/v1":
            problems.append(f"{describe(so)}: does not target a Deployment")
        if named(objects, "Deployment", name) is None:
            problems.append(f"{describe(so)}: targets {name}, which does not exist")
        triggers = [t for t in so["spec"]["triggers"] if t["type"] == "aws-sqs-queue"]
        if len(triggers) != 1 or len(so["spec"]["triggers"]) != 1:
            problems.append(f"{describe(so)}: expected exactly one trigger, of type aws-sqs-queue")
            continue
        missing = REQUIRED_SQS_METADATA - set(triggers[0]["metadata"])
        if missing:
            problems.append(f"{describe(so)}: trigger metadata lacks {sorted(missing)}")
    return problems


def grace_problems(objects: list[dict]) -> list[str]:
    problems = []
    graces = {}
    for lane in LANES:
        dep = named(objects, "Deployment", f"longhaul-worker-{lane}")
        if dep is None:
            problems.append(f"lane {lane}: no Deployment")
            continue
        pod = dep["spec"]["template"]["spec"]
        grace = pod.get("terminationGracePeriodSeconds", 30)
        graces[lane] = grace
        for c in pod["containers"]:
            shutdown = env_value(c, "LONGHAUL_SHUTDOWN_GRACE_SECS")
            if shutdown is None or not str(shutdown).isdigit():
                problems.append(f"{describe(dep)}: LONGHAUL_SHUTDOWN_GRACE_SECS is not set to a number of seconds")
            elif grace < int(shutdown) + 10:
                problems.append(
                    f"{describe(dep)}: terminationGracePeriodSeconds {grace} leaves under 10 s after "
                    f"LONGHAUL_SHUTDOWN_GRACE_SECS {shutdown} to hand jobs back"
                )
    if "video" in graces and any(g >= graces["video"] for lane, g in graces.items() if lane != "video"):
        problems.append(f"the video lane's grace period is not the longest: {graces}")
    if graces.get("video", 0) < 7200:
        problems.append("the video lane's grace period is under the 2 h a video may take")
    return problems


def video_problems(objects: list[dict]) -> list[str]:
    problems = []
    for lane in LANES:
        dep = named(objects, "Deployment", f"longhaul-worker-{lane}")
        if dep is None:
            continue
        pod = dep["spec"]["template"]["spec"]
        tolerates = any(
            t.get("key") == "lane" and t.get("value") == "video" and t.get("effect") == "NoSchedule"
            for t in pod.get("tolerations", [])
        )
        pinned = pod.get("nodeSelector", {}).get("longhaul.dev/lane") == "video"
        if lane == "video" and not (tolerates and pinned):
            problems.append(
                "the video lane does not both tolerate lane=video:NoSchedule and select longhaul.dev/lane=video nodes"
            )
        if lane != "video" and (tolerates or pinned):
            problems.append(f"lane {lane}: would run on the video nodes")
    return problems


def migration_problems(objects: list[dict]) -> list[str]:
    jobs = [
        j
        for j in by_kind(objects, "Job")
        if any(c.get("args", [])[:1] == ["migrate"] for c in j["spec"]["template"]["spec"]["containers"])
    ]
    if len(jobs) != 1:
        return [f"{len(jobs)} Jobs run `longhaul migrate`, expected one"]
    spec = jobs[0]["spec"]
    problems = []
    if not isinstance(spec.get("backoffLimit"), int):
        problems.append("the migrations Job has no backoffLimit")
    if not isinstance(spec.get("ttlSecondsAfterFinished"), int):
        problems.append("the migrations Job has no ttlSecondsAfterFinished")
    if spec["template"]["spec"].get("restartPolicy") not in ("Never", "OnFailure"):
        problems.append("the migrations Job's pods must not restart forever")
    return problems


def all_problems(objects: list[dict]) -> list[str]:
    return (
        probe_problems(objects)
        + spread_problems(objects)
        + hardening_problems(objects)
        + lane_problems(objects)
        + grace_problems(objects)
        + video_problems(objects)
        + migration_problems(objects)
    )


# --------------------------------------------------------------------------
# Tests on the rendered overlays
# --------------------------------------------------------------------------


@pytest.fixture(params=OVERLAYS)
def overlay(request) -> str:
    return request.param


def test_overlay_renders_into_the_longhaul_namespace(overlay):
    objects = render(overlay)
    assert len(objects) > 20
    for obj in objects:
        if obj["kind"] == "Namespace":
            assert obj["metadata"]["name"] == NAMESPACE
        else:
            assert obj["metadata"].get("namespace") == NAMESPACE, describe(obj)
    leftovers = [describe(o) for o in objects if PLACEHOLDER in json.dumps(o)]
    assert not leftovers, f"placeholders the overlay did not replace: {leftovers}"


def test_builtin_objects_match_the_kubernetes_schemas(overlay):
    builtin = [o for o in render(overlay) if (o["apiVersion"], o["kind"]) not in CRD_SCHEMAS]
    assert {o["kind"] for o in builtin} >= {
        "Namespace",
        "ServiceAccount",
        "ConfigMap",
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "Job",
        "NetworkPolicy",
    }
    errors = [e for o in builtin for e in schema_errors(o)]
    assert not errors, "\n".join(errors)


def test_custom_resources_match_their_crd_schemas(overlay):
    custom = [o for o in render(overlay) if (o["apiVersion"], o["kind"]) in CRD_SCHEMAS]
    assert {o["kind"] for o in custom} == {"ScaledObject", "TriggerAuthentication", "ExternalSecret", "SecretStore"}
    errors = [e for o in custom for e in schema_errors(o)]
    assert not errors, "\n".join(errors)


def test_every_deployment_has_probes_on_healthz_and_readyz(overlay):
    assert probe_problems(render(overlay)) == []


def test_every_deployment_spreads_across_zones_and_hosts(overlay):
    assert spread_problems(render(overlay)) == []


def test_every_pod_is_non_root_read_only_and_bounded(overlay):
    assert hardening_problems(render(overlay)) == []


def test_each_lane_has_one_deployment_and_one_scaledobject(overlay):
    assert lane_problems(render(overlay)) == []


def test_scaledobjects_watch_their_lanes_queue(overlay):
    objects = render(overlay)
    env = named(objects, "ConfigMap", "longhaul-environment")["data"]
    prefix = env["LONGHAUL_SQS_QUEUE_PREFIX"]
    auths = {t["metadata"]["name"]: t for t in by_kind(objects, "TriggerAuthentication")}
    for lane, concurrency in LANES.items():
        so = named(objects, "ScaledObject", f"longhaul-worker-{lane}")
        trigger = so["spec"]["triggers"][0]
        meta = trigger["metadata"]
        # The queue the workers read (prefix + lane, and the per-lane URL they also get).
        assert meta["queueURL"] == prefix + lane == env[f"LONGHAUL_SQS_QUEUE_URL_{lane.upper()}"]
        assert meta["awsRegion"] == env["AWS_REGION"]
        assert f"sqs.{env['AWS_REGION']}.amazonaws.com" in meta["queueURL"]
        # One target message per free slot; in-flight jobs keep their pods.
        assert meta["queueLength"] == str(concurrency)
        assert meta["scaleOnInFlight"] == "true"
        assert int(meta["activationQueueLength"]) >= 0
        # Credentials come from KEDA's own pod identity, never from keys.
        auth = auths[trigger["authenticationRef"]["name"]]
        assert trigger["authenticationRef"].get("kind", "TriggerAuthentication") == "TriggerAuthentication"
        assert auth["spec"] == {"podIdentity": {"provider": "aws", "identityOwner": "keda"}}
        # The pods' own concurrency matches the target.
        dep = named(objects, "Deployment", f"longhaul-worker-{lane}")
        args = dep["spec"]["template"]["spec"]["containers"][0]["args"]
        assert args[args.index("--concurrency") + 1] == str(concurrency)
        # Scaling down is never faster than the HPA default, and slowest for video.
        behavior = so["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
        assert behavior["scaleDown"]["stabilizationWindowSeconds"] >= 300
        # KEDA owns the count: a `replicas` field would reset it on every apply.
        assert "replicas" not in dep["spec"], f"{describe(dep)} sets replicas, which KEDA owns"
    video = named(objects, "ScaledObject", "longhaul-worker-video")["spec"]
    others = [named(objects, "ScaledObject", f"longhaul-worker-{lane}")["spec"] for lane in LANES if lane != "video"]
    video_down = video["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"][
        "stabilizationWindowSeconds"
    ]
    assert all(
        video_down
        > o["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"]
        for o in others
    )
    assert all(video["cooldownPeriod"] >= o.get("cooldownPeriod", 300) for o in others)


def test_some_worker_always_runs_the_dispatcher_and_scheduler(overlay):
    # Jobs reach SQS only through a running worker's dispatch outbox, and the
    # scheduler runs in workers: with every lane at zero nothing would move.
    objects = render(overlay)
    always_on = [s for s in by_kind(objects, "ScaledObject") if s["spec"].get("minReplicaCount", 0) >= 1]
    assert always_on, "every lane may scale to zero"


def test_termination_grace_covers_the_shutdown_grace(overlay):
    objects = render(overlay)
    assert grace_problems(objects) == []
    api = named(objects, "Deployment", "longhaul-api")["spec"]["template"]["spec"]
    pre_stop = api["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"]
    # The preStop sleep plus the API's 10 s drain fit in the grace period.
    assert pre_stop + 10 < api["terminationGracePeriodSeconds"]


def test_video_runs_on_the_video_nodes_only(overlay):
    assert video_problems(render(overlay)) == []


def test_migrations_job(overlay):
    objects = render(overlay)
    assert migration_problems(objects) == []
    job = named(objects, "Job", "longhaul-migrate")
    env = job["spec"]["template"]["spec"]["containers"][0]["env"]
    assert any(e["name"] == "LONGHAUL_DATABASE_URL" for e in env)


def test_api_service_hpa_and_pdb_fit_the_api(overlay):
    objects = render(overlay)
    api = named(objects, "Deployment", "longhaul-api")
    labels = api["spec"]["template"]["metadata"]["labels"]
    service = named(objects, "Service", "longhaul-api")
    assert all(labels.get(k) == v for k, v in service["spec"]["selector"].items())
    assert service["spec"]["ports"][0]["targetPort"] in ("http", API_PORT)
    hpa = named(objects, "HorizontalPodAutoscaler", "longhaul-api")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "longhaul-api"}
    assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]
    assert hpa["spec"]["minReplicas"] >= 2
    # The HPA owns the count: a `replicas` field would reset it on every apply.
    assert "replicas" not in api["spec"], "the API Deployment sets replicas, which the HPA owns"
    assert hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"]


def floor(objects, dep):
    """The fewest pods a Deployment runs: its autoscaler's minimum."""
    name = dep["metadata"]["name"]
    for hpa in by_kind(objects, "HorizontalPodAutoscaler"):
        if hpa["spec"]["scaleTargetRef"]["name"] == name:
            return hpa["spec"]["minReplicas"]
    for so in by_kind(objects, "ScaledObject"):
        if so["spec"]["scaleTargetRef"]["name"] == name:
            return so["spec"].get("minReplicaCount", 0)
    return dep["spec"].get("replicas", 1)


def test_every_deployment_has_a_pdb_that_allows_drains(overlay):
    objects = render(overlay)
    pdbs = by_kind(objects, "PodDisruptionBudget")
    for dep in by_kind(objects, "Deployment"):
        labels = dep["spec"]["template"]["metadata"]["labels"]
        mine = [p for p in pdbs if selects(p["spec"]["selector"], labels)]
        assert len(mine) == 1, f"{describe(dep)}: {len(mine)} PDBs"
        spec = mine[0]["spec"]
        if "maxUnavailable" in spec:
            assert spec["maxUnavailable"] not in (0, "0%"), f"{describe(dep)}: the PDB blocks every drain"
        else:
            assert spec["minAvailable"] < floor(objects, dep), f"{describe(dep)}: the PDB blocks every drain"


def test_service_accounts_are_the_ones_terraform_knows(overlay):
    # EKS Pod Identity associations name these accounts in namespace longhaul.
    objects = render(overlay)
    accounts = {a["metadata"]["name"]: a for a in by_kind(objects, "ServiceAccount")}
    expected = {"longhaul-api": "longhaul-api"} | {
        f"longhaul-worker-{lane}": f"longhaul-worker-{lane}" for lane in LANES
    }
    for deployment, account in expected.items():
        pod = named(objects, "Deployment", deployment)["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] == account
    for work in workloads(objects):
        name = work["spec"]["template"]["spec"].get("serviceAccountName")
        assert name in accounts, f"{describe(work)}: service account {name} is not defined"
    for account in accounts.values():
        assert account.get("automountServiceAccountToken") is False


def test_configuration_comes_from_configmaps_and_the_secret(overlay):
    objects = render(overlay)
    readme = (REPO / "README.md").read_text()
    documented = set(re.findall(r"`(LONGHAUL_[A-Z0-9_<>]+)`", readme)) | {"AWS_REGION"}
    config_maps = {c["metadata"]["name"]: c["data"] for c in by_kind(objects, "ConfigMap")}
    external = named(objects, "ExternalSecret", "longhaul-secrets")
    secret_name = external["spec"]["target"]["name"]
    # The Secret holds what the template makes, from what spec.data fetches:
    # the RDS-managed master secret and Terraform's secret-keys secret.
    template = external["spec"]["target"]["template"]["data"]
    secret_keys = set(template)
    assert secret_keys == {"database-url", "secret-keys"}
    fetched = {d["secretKey"]: d["remoteRef"] for d in external["spec"]["data"]}
    used = {v for text in template.values() for v in re.findall(r"\{\{\s*\.(\w+)", text)}
    assert used == set(fetched) == {"username", "password", "secretKeys"}
    assert fetched["username"]["key"] == fetched["password"]["key"]
    assert ":secret:rds!" in fetched["username"]["key"]
    assert fetched["secretKeys"]["key"] == f"longhaul-{overlay}/secret-keys"
    assert re.fullmatch(
        r"postgres://\{\{ \.username \| urlquery \}\}:\{\{ \.password \| urlquery \}\}"
        r"@[\w.-]+:\d+/\w+\?sslmode=require",
        template["database-url"],
    ), template["database-url"]
    assert named(objects, "SecretStore", external["spec"]["secretStoreRef"]["name"]) is not None

    def is_documented(name: str) -> bool:
        return name in documented or re.sub(r"_(VIDEO|REPORTS|EMAIL|REFRESH|DATA|DEFAULT)$", "_<LANE>", name) in documented

    for name, data in config_maps.items():
        for key in data:
            assert is_documented(key), f"ConfigMap {name}: {key} is not a documented setting (README, Configuration)"
            assert key not in ("LONGHAUL_DATABASE_URL", "LONGHAUL_SECRET_KEYS"), f"ConfigMap {name} holds a secret"
            # These would override every worker's --lanes and --concurrency.
            assert key not in ("LONGHAUL_LANES", "LONGHAUL_CONCURRENCY"), f"ConfigMap {name} sets {key}"
    merged = {k: v for data in config_maps.values() for k, v in data.items()}
    assert merged["LONGHAUL_QUEUE"] == "sqs"
    assert merged["LONGHAUL_LOG_FORMAT"] == "json"
    assert merged["LONGHAUL_OBJECT_STORE"].startswith("s3://")
    assert merged["LONGHAUL_SNS_TOPIC_ARN"].startswith("arn:aws:sns:")
    assert merged["LONGHAUL_JWKS_URL"].startswith("https://")
    for work in workloads(objects):
        for c in work["spec"]["template"]["spec"]["containers"]:
            for source in c.get("envFrom", []):
                assert source["configMapRef"]["name"] in config_maps, describe(work)
            names = [e["name"] for e in c.get("env", [])]
            assert len(names) == len(set(names)), f"{describe(work)}: an env var is set twice"
            for e in c.get("env", []):
                assert is_documented(e["name"]), f"{describe(work)}: {e['name']} is not a documented setting"
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] == secret_name and ref["key"] in secret_keys, describe(work)
                elif "valueFrom" in e:
                    raise AssertionError(f"{describe(work)}: {e['name']} comes from somewhere unexpected")
            assert "LONGHAUL_DATABASE_URL" in names, f"{describe(work)}: no database"
            # Only the API and the email lane open sealed mail credentials.
            needs_keys = work["metadata"]["name"] in ("longhaul-api", "longhaul-worker-email")
            assert ("LONGHAUL_SECRET_KEYS" in names) == needs_keys, describe(work)


def test_images_are_pinned_to_the_overlays_registry(overlay):
    objects = render(overlay)
    for work in workloads(objects):
        for c in work["spec"]["template"]["spec"]["containers"]:
            match = IMAGE_RE.match(c["image"])
            assert match and "/" in match["name"] and ".dkr.ecr." in match["name"], c["image"]
            assert match["name"].rsplit("/", 1)[1] in ("longhaul-api", "longhaul-worker"), c["image"]
            assert match["digest"] or (match["tag"] and match["tag"] != "latest"), c["image"]
    worker_images = {
        c["image"]
        for d in by_kind(objects, "Deployment")
        if d["metadata"]["name"].startswith("longhaul-worker-")
        for c in d["spec"]["template"]["spec"]["containers"]
    }
    assert len(worker_images) == 1 and "longhaul-worker" in worker_images.pop()


def test_network_policies_admit_only_the_service_ports(overlay):
    objects = render(overlay)
    policies = by_kind(objects, "NetworkPolicy")
    deny = [p for p in policies if p["spec"]["podSelector"] == {} and not p["spec"].get("ingress")]
    assert deny and deny[0]["spec"]["policyTypes"] == ["Ingress"]
    for dep in by_kind(objects, "Deployment"):
        labels = dep["spec"]["template"]["metadata"]["labels"]
        container = dep["spec"]["template"]["spec"]["containers"][0]
        mine = [p for p in policies if p["spec"]["podSelector"] and selects(p["spec"]["podSelector"], labels)]
        ports = {
            port_number(container, port["port"])
            for p in mine
            for rule in p["spec"]["ingress"]
            for port in rule["ports"]
        }
        expected = API_PORT if dep["metadata"]["name"] == "longhaul-api" else WORKER_PORT
        assert ports == {expected}, describe(dep)


# --------------------------------------------------------------------------
# The renderer refuses what it does not implement
# --------------------------------------------------------------------------


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: app, namespace: longhaul}
spec:
  selector: {matchLabels: {app: x}}
  template:
    metadata: {labels: {app: x}}
    spec:
      containers:
        - name: main
          image: app:1
          args: ["a", "b"]
          env: [{name: A, value: "1"}, {name: B, value: "2"}]
        - name: side
          image: side:1
"""


def smp(metadata: str, spec: str = "{}") -> str:
    """A kustomization line with one inline strategic-merge patch of a Deployment."""
    return f"patches: [{{patch: 'apiVersion: apps/v1\n\nkind: Deployment\n\nmetadata: {metadata}\n\nspec: {spec}'}}]"


def replacement(source: str, target: str) -> str:
    return f"replacements: [{{source: {source}, targets: [{target}]}}]"


APP = "{name: app, namespace: longhaul}"
REFUSALS = {
    "commonLabels": "commonLabels: {a: b}",
    "namePrefix": "namePrefix: x-",
    "configMapGenerator": "configMapGenerator: [{name: c, literals: [a=b]}]",
    "patch-target": "patches: [{path: patch.yaml, target: {kind: Deployment}}]",
    "json6902": "patches: [{patch: '[{op: replace, path: /spec/replicas, value: 2}]'}]",
    "patch-matches-nothing": smp("{name: other, namespace: longhaul}"),
    "patch-without-namespace": smp("{name: app}", "{replicas: 2}"),
    "unknown-list": smp(APP, "{template: {spec: {containers: [{name: main, ports: [{containerPort: 1}]}]}}}"),
    "smp-directive": smp(APP, "{$patch: replace}"),
    "replacement-file": "replacements: [{path: r.yaml}]",
    "replacement-missing-source-field": replacement(
        "{kind: Deployment, name: app, fieldPath: spec.nope}",
        "{select: {kind: Deployment}, fieldPaths: [metadata.name]}",
    ),
    "replacement-selects-nothing": replacement(
        "{kind: Deployment, name: app}", "{select: {kind: Service}, fieldPaths: [metadata.name]}"
    ),
    "replacement-selector-matches-nothing": replacement(
        "{kind: Deployment, name: app}",
        "{select: {kind: Deployment}, fieldPaths: ['spec.template.spec.containers.[image=nope].name']}",
    ),
    "file-outside-root": "resources: [../outside.yaml]",
}


@pytest.mark.parametrize("refusal", sorted(REFUSALS))
def test_renderer_refuses_what_it_does_not_implement(tmp_path, refusal):
    kustomization = REFUSALS[refusal]
    write(tmp_path / "outside.yaml", DEPLOYMENT)
    write(tmp_path / "app" / "deployment.yaml", DEPLOYMENT)
    resources = "" if kustomization.startswith("resources:") else "resources: [deployment.yaml]\n"
    write(
        tmp_path / "app" / "kustomization.yaml",
        f"apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n{resources}{kustomization}\n",
    )
    with pytest.raises(KustomizeError):
        build(tmp_path / "app")


def test_renderer_merges_patches_images_and_replacements_like_kustomize(tmp_path):
    write(tmp_path / "base" / "deployment.yaml", DEPLOYMENT)
    write(
        tmp_path / "base" / "kustomization.yaml",
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [deployment.yaml]\n",
    )
    write(
        tmp_path / "overlay" / "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: env, namespace: longhaul}\ndata: {TAG: from-cm}\n",
    )
    write(
        tmp_path / "overlay" / "kustomization.yaml",
        """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: other
resources: [../base, cm.yaml]
images:
  - {name: app, newName: registry.example/app, newTag: "2"}
patches:
  - patch: |-
      apiVersion: apps/v1
      kind: Deployment
      metadata: {name: app, namespace: longhaul}
      spec:
        replicas: 4
        template:
          spec:
            containers:
              - name: main
                args: ["c"]
                env: [{name: B, value: "3"}, {name: C, value: "4"}]
replacements:
  - source: {kind: ConfigMap, name: env, fieldPath: data.TAG}
    targets:
      - select: {kind: Deployment, name: app}
        fieldPaths: ["spec.template.spec.containers.[name=side].env"]
""",
    )
    with pytest.raises(KustomizeError):  # env of "side" does not exist
        build(tmp_path / "overlay")
    text = (tmp_path / "overlay" / "kustomization.yaml").read_text()
    write(
        tmp_path / "overlay" / "kustomization.yaml",
        text.replace("spec.template.spec.containers.[name=side].env", "spec.template.metadata.labels.app"),
    )
    objects = build(tmp_path / "overlay")
    dep = named(objects, "Deployment", "app")
    main, side = dep["spec"]["template"]["spec"]["containers"]
    assert dep["metadata"]["namespace"] == "other" and dep["spec"]["replicas"] == 4
    assert main["args"] == ["c"]  # a list without merge key is replaced
    assert main["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "3"}, {"name": "C", "value": "4"}]
    assert main["image"] == "registry.example/app:2" and side["image"] == "side:1"
    assert dep["spec"]["template"]["metadata"]["labels"]["app"] == "from-cm"


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (with its built-in kustomize) is not installed")
def test_renderer_agrees_with_kubectl_kustomize(overlay):
    # Where kubectl is at hand (it renders offline), the real kustomize must
    # give exactly the objects this renderer gives.
    out = subprocess.run(
        ["kubectl", "kustomize", str(K8S / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    theirs = sorted((d for d in yaml.safe_load_all(out.stdout) if d), key=lambda o: repr(object_id(o)))
    mine = sorted(render(overlay), key=lambda o: repr(object_id(o)))
    assert [object_id(o) for o in mine] == [object_id(o) for o in theirs]
    for a, b in zip(mine, theirs, strict=True):
        assert a == b, describe(a)


# --------------------------------------------------------------------------
# The checks fail on broken manifests
# --------------------------------------------------------------------------


def pod_of(objects, kind, name):
    return named(objects, kind, name)["spec"]["template"]["spec"]


def container_of(objects, kind, name):
    return pod_of(objects, kind, name)["containers"][0]


def so_spec(objects, lane="video"):
    return named(objects, "ScaledObject", f"longhaul-worker-{lane}")["spec"]


BREAKAGES = {
    "no-readiness-probe": (
        all_problems,
        lambda o: container_of(o, "Deployment", "longhaul-api").pop("readinessProbe"),
    ),
    "liveness-on-readyz": (
        all_problems,
        lambda o: container_of(o, "Deployment", "longhaul-worker-email")["livenessProbe"]["httpGet"].update(
            path="/readyz"
        ),
    ),
    "probe-on-wrong-port": (
        all_problems,
        lambda o: container_of(o, "Deployment", "longhaul-worker-email")["readinessProbe"]["httpGet"].update(port=8080),
    ),
    "no-zone-spread": (
        all_problems,
        lambda o: pod_of(o, "Deployment", "longhaul-worker-refresh")["topologySpreadConstraints"].pop(0),
    ),
    "api-zone-spread-soft": (
        all_problems,
        lambda o: pod_of(o, "Deployment", "longhaul-api")["topologySpreadConstraints"][0].update(
            whenUnsatisfiable="ScheduleAnyway"
        ),
    ),
    "writable-root": (
        all_problems,
        lambda o: container_of(o, "Job", "longhaul-migrate")["securityContext"].update(readOnlyRootFilesystem=False),
    ),
    "runs-as-root": (
        all_problems,
        lambda o: container_of(o, "Deployment", "longhaul-worker-video")["securityContext"].update(runAsUser=0),
    ),
    "no-memory-limit": (
        all_problems,
        lambda o: container_of(o, "Deployment", "longhaul-worker-default")["resources"]["limits"].pop("memory"),
    ),
    "grace-below-shutdown": (
        all_problems,
        lambda o: pod_of(o, "Deployment", "longhaul-worker-reports").update(terminationGracePeriodSeconds=840),
    ),
    "video-not-longest": (
        all_problems,
        lambda o: pod_of(o, "Deployment", "longhaul-worker-reports").update(terminationGracePeriodSeconds=9000),
    ),
    "video-untolerated": (
        all_problems,
        lambda o: pod_of(o, "Deployment", "longhaul-worker-video").pop("tolerations"),
    ),
    "second-email-deployment": (
        all_problems,
        lambda o: o.append(
            json.loads(
                json.dumps(named(o, "Deployment", "longhaul-worker-email")).replace(
                    "longhaul-worker-email", "longhaul-worker-email-2"
                )
            )
        ),
    ),
    "scaledobject-targets-wrong-deployment": (
        all_problems,
        lambda o: so_spec(o, "refresh")["scaleTargetRef"].update(name="longhaul-worker-email"),
    ),
    "trigger-without-queue-length": (
        all_problems,
        lambda o: so_spec(o, "email")["triggers"][0]["metadata"].pop("queueLength"),
    ),
    "no-migrations-job": (all_problems, lambda o: o.remove(named(o, "Job", "longhaul-migrate"))),
    "keda-unknown-metadata-key": (schema_errors, lambda o: so_spec(o)["triggers"][0]["metadata"].update(queueUrl="x")),
    "keda-number-not-a-string": (schema_errors, lambda o: so_spec(o)["triggers"][0]["metadata"].update(queueLength=1)),
    "keda-unknown-spec-field": (schema_errors, lambda o: so_spec(o).update(minReplicas=1)),
    "keda-min-above-max": (schema_errors, lambda o: so_spec(o).update(minReplicaCount=50)),
    "keda-bad-region": (schema_errors, lambda o: so_spec(o)["triggers"][0]["metadata"].update(awsRegion="Europe")),
    "keda-auth-unknown-provider": (
        schema_errors,
        lambda o: named(o, "TriggerAuthentication", "longhaul-keda-aws")["spec"]["podIdentity"].update(
            provider="aws-iam"
        ),
    ),
    "eso-unknown-field": (
        schema_errors,
        lambda o: named(o, "ExternalSecret", "longhaul-secrets")["spec"].update(refresh="1h"),
    ),
    "k8s-unknown-field": (
        schema_errors,
        lambda o: container_of(o, "Deployment", "longhaul-api").update(readinessprobe={}),
    ),
    "k8s-wrong-type": (
        schema_errors,
        lambda o: named(o, "Deployment", "longhaul-api")["spec"].update(replicas="three"),
    ),
    "k8s-unknown-kind": (
        schema_errors,
        lambda o: o.append({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}),
    ),
}


@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
def test_checks_catch_a_broken_manifest(breakage):
    check, mutate = BREAKAGES[breakage]
    objects = render("prod")
    if check is schema_errors:
        assert [e for o in objects for e in schema_errors(o)] == []
    else:
        assert check(objects) == []
    mutate(objects)
    if check is schema_errors:
        problems = [e for o in objects for e in schema_errors(o)]
    else:
        problems = check(objects)
    assert problems, f"{breakage} went unnoticed"
