"""Offline checks of infra/terraform: every file parses, and the invariants
that the deployment relies on hold in the HCL as written.

No provider or module is downloaded: the files are parsed with `hcl2` (the
python-hcl2 parser that checkov ships, from PyPI's bc-python-hcl2), and the
tests read the values themselves (not just the names), so that each one fails
when its invariant is broken. `LONGHAUL_TF_DIR` points them at another copy
of the tree (to check that they fail on a broken one).

bc-python-hcl2 wraps every attribute's value in a one-element list, while
blocks are lists of dicts; `attr` and `blocks` below read each accordingly.
Expressions come back as `${...}` strings, which the tests match with
regular expressions.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hcl2
import pytest

TF_DIR = Path(os.environ.get("LONGHAUL_TF_DIR") or Path(__file__).resolve().parents[1] / "terraform")
ENVS = ("staging", "prod")
LANES = {"video", "reports", "email", "refresh", "data", "default"}

# Services whose resources hold or move data: no Allow may grant a wildcard
# action on them, nor any of their actions on Resource "*".
DATA_SERVICES = {"s3", "sqs", "sns", "kms", "rds", "rds-db", "secretsmanager", "dynamodb"}


# ---------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------


def tf_files() -> list[Path]:
    return sorted(p for p in TF_DIR.rglob("*.tf") if ".terraform" not in p.parts)


@dataclass
class Config:
    """One Terraform directory's files, merged."""

    path: Path
    resources: dict[str, dict[str, dict]] = field(default_factory=lambda: defaultdict(dict))
    data: dict[str, dict[str, dict]] = field(default_factory=lambda: defaultdict(dict))
    modules: dict[str, dict] = field(default_factory=dict)
    variables: dict[str, dict] = field(default_factory=dict)
    outputs: dict[str, dict] = field(default_factory=dict)
    locals: dict[str, Any] = field(default_factory=dict)
    providers: dict[str, dict] = field(default_factory=dict)
    terraform: list[dict] = field(default_factory=list)


def load(directory: Path) -> Config:
    config = Config(directory)
    for path in sorted(directory.glob("*.tf")):
        with path.open() as handle:
            doc = hcl2.load(handle)
        for block in doc.get("resource", []):
            for kind, named in block.items():
                config.resources[kind].update(named)
        for block in doc.get("data", []):
            for kind, named in block.items():
                config.data[kind].update(named)
        for block in doc.get("module", []):
            config.modules.update(block)
        for block in doc.get("variable", []):
            config.variables.update(block)
        for block in doc.get("output", []):
            config.outputs.update(block)
        for block in doc.get("provider", []):
            config.providers.update(block)
        for block in doc.get("locals", []):
            config.locals.update({k: unwrap(v) for k, v in block.items() if not k.startswith("__")})
        config.terraform.extend(doc.get("terraform", []))
    return config


def unwrap(value: Any) -> Any:
    """An attribute's value: bc-python-hcl2 wraps it in a one-element list."""
    if isinstance(value, list) and len(value) == 1:
        return value[0]
    return value


MISSING = object()


def attr(body: dict, name: str, default: Any = MISSING) -> Any:
    if name not in body:
        if default is MISSING:
            raise AssertionError(f"attribute `{name}` is missing (has: {sorted(k for k in body if not k.startswith('__'))})")
        return default
    return unwrap(body[name])


def blocks(body: dict, name: str) -> list[dict]:
    value = body.get(name, [])
    assert isinstance(value, list) and all(isinstance(b, dict) for b in value), f"`{name}` is not a block"
    return value


def as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def expr(value: Any) -> str:
    """An expression's text, spaces removed, for matching."""
    return re.sub(r"\s+", "", str(value))


@pytest.fixture(scope="session")
def root() -> Config:
    return load(TF_DIR)


@pytest.fixture(scope="session")
def envs() -> dict[str, Config]:
    return {env: load(TF_DIR / "envs" / env) for env in ENVS}


def variable_values(root: Config, envs: dict[str, Config], value: Any) -> list[Any]:
    """Every value an expression can take, when it is a literal or
    `var.X` (X's default and what each environment passes): the tests then
    check each of them."""
    match = re.fullmatch(r"\$\{var\.(\w+)\}", str(value))
    if not match:
        return [value]
    name = match.group(1)
    variable = root.variables.get(name)
    assert variable is not None, f"var.{name} is not declared"
    values = []
    if "default" in variable:
        values.append(attr(variable, "default"))
    for env, config in envs.items():
        module = config.modules["longhaul"]
        if name in module:
            passed = attr(module, name)
            assert not str(passed).startswith("${"), f"envs/{env} passes {name} as an expression; the tests need a literal"
            values.append(passed)
    assert values, f"var.{name} has no default and no environment sets it"
    return values


def policy_documents(config: Config) -> dict[str, dict]:
    return config.data.get("aws_iam_policy_document", {})


@dataclass
class Statement:
    document: str
    sid: str
    effect: str
    actions: list[str]
    resources: list[str]
    principals: list[tuple[str, list[str]]]
    conditions: list[tuple[str, str, list[str]]]


def own_and_sourced_statements(documents: dict, name: str) -> list:
    """A document's statements, and those of the documents it names in
    `source_policy_documents` (which IAM merges into it)."""
    document = documents[name]
    assert "dynamic" not in document, f"policy document {name}: dynamic statements cannot be checked offline"
    found = list(blocks(document, "statement"))
    for source in as_list(attr(document, "source_policy_documents", [])):
        match = re.fullmatch(r"\$\{data\.aws_iam_policy_document\.(\w+)\.json\}", source)
        assert match, f"policy document {name}: source {source} is not a local policy document"
        found += own_and_sourced_statements(documents, match.group(1))
    return found


def statements(config: Config) -> list[Statement]:
    found = []
    documents = policy_documents(config)
    for name in documents:
        for statement in own_and_sourced_statements(documents, name):
            assert "not_actions" not in statement, f"{name}: not_actions grants everything else"
            found.append(
                Statement(
                    document=name,
                    sid=attr(statement, "sid", ""),
                    effect=attr(statement, "effect", "Allow"),
                    actions=as_list(attr(statement, "actions", [])),
                    resources=as_list(attr(statement, "resources", [])),
                    principals=[
                        (attr(p, "type"), as_list(attr(p, "identifiers"))) for p in blocks(statement, "principals")
                    ],
                    conditions=[
                        (attr(c, "test"), attr(c, "variable"), as_list(attr(c, "values")))
                        for c in blocks(statement, "condition")
                    ],
                )
            )
    return found


def key_policy_documents(config: Config) -> set[str]:
    """The policy documents used as KMS key policies."""
    names = set()
    for key in config.resources.get("aws_kms_key", {}).values():
        match = re.search(r"data\.aws_iam_policy_document\.(\w+)\.json", str(attr(key, "policy")))
        assert match, "every KMS key has a key policy from an aws_iam_policy_document"
        names.add(match.group(1))
    return names


# ---------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------


def test_the_tree_has_the_root_module_and_both_environments():
    names = {p.relative_to(TF_DIR).as_posix() for p in tf_files()}
    for required in (
        "versions.tf",
        "variables.tf",
        "main.tf",
        "vpc.tf",
        "eks.tf",
        "rds.tf",
        "sqs.tf",
        "sns.tf",
        "s3.tf",
        "kms.tf",
        "iam.tf",
        "keda.tf",
        "outputs.tf",
        "envs/staging/main.tf",
        "envs/prod/main.tf",
    ):
        assert required in names, f"{required} is missing"


@pytest.mark.parametrize("path", tf_files(), ids=lambda p: p.relative_to(TF_DIR).as_posix())
def test_every_file_parses(path: Path):
    with path.open() as handle:
        doc = hcl2.load(handle)
    assert isinstance(doc, dict) and doc, f"{path} parsed to nothing"


# ---------------------------------------------------------------------------
# Three availability zones
# ---------------------------------------------------------------------------


def test_the_vpc_spans_exactly_three_availability_zones(root: Config):
    vpc = root.modules["vpc"]
    assert attr(vpc, "source") == "terraform-aws-modules/vpc/aws"
    assert expr(attr(vpc, "azs")) == "${local.azs}"

    azs = expr(root.locals["azs"])
    match = re.fullmatch(r"\$\{data\.aws_availability_zones\.(\w+)\.names\}", azs)
    assert match, f"local.azs must be the zones of the pinned data source: {azs}"

    # The zones are pinned by ID (a closed set: a zone AWS adds later never
    # joins it; checkov CKV_AWS_394), the variable takes exactly three, and
    # the data source fails the plan unless all three are available.
    zones = root.data["aws_availability_zones"][match.group(1)]
    filters = {attr(f, "name"): expr(attr(f, "values")) for f in blocks(zones, "filter")}
    assert filters.get("zone-id") == "${var.availability_zone_ids}", filters
    validations = [expr(attr(v, "condition")) for v in blocks(root.variables["availability_zone_ids"], "validation")]
    assert any("length(var.availability_zone_ids)==3" in v for v in validations), validations
    postconditions = [
        expr(attr(p, "condition")) for lc in blocks(zones, "lifecycle") for p in blocks(lc, "postcondition")
    ]
    assert "${length(self.names)==3}" in postconditions

    # Every subnet tier has one subnet per zone.
    for tier in ("private_subnets", "public_subnets", "database_subnets"):
        value = attr(vpc, tier)
        if isinstance(value, list):
            assert len(value) == 3, f"{tier} lists {len(value)} subnets"
        else:
            assert re.match(r"\$\{\[for\w+,\w+inlocal\.azs:", expr(value)), f"{tier} is not one subnet per zone: {value}"


def test_nat_gateways_do_not_share_a_zone(root: Config):
    vpc = root.modules["vpc"]
    assert attr(vpc, "enable_nat_gateway") is True
    assert attr(vpc, "single_nat_gateway") is False
    assert attr(vpc, "one_nat_gateway_per_az") is True


# ---------------------------------------------------------------------------
# EKS
# ---------------------------------------------------------------------------


def test_eks_is_the_v21_module(root: Config):
    eks = root.modules["eks"]
    assert attr(eks, "source") == "terraform-aws-modules/eks/aws"
    assert re.fullmatch(r"~>\s*21\.\d+", attr(eks, "version")), attr(eks, "version")
    # v21 names, not v20's cluster_*.
    for name in ("name", "kubernetes_version", "addons", "endpoint_public_access"):
        assert name in eks, f"module.eks has no `{name}`"
    for old in ("cluster_name", "cluster_version", "cluster_addons", "cluster_endpoint_public_access"):
        assert old not in eks, f"module.eks uses the pre-v21 input `{old}`"
    assert "eks-pod-identity-agent" in attr(eks, "addons")


def test_node_groups_span_the_three_private_subnets(root: Config, envs: dict[str, Config]):
    eks = root.modules["eks"]
    assert expr(attr(eks, "subnet_ids")) == "${module.vpc.private_subnets}"
    groups = attr(eks, "eks_managed_node_groups")
    assert {"general", "video"} <= set(groups)
    for name, group in groups.items():
        assert expr(group.get("subnet_ids")) == "${module.vpc.private_subnets}", f"node group {name} is not on the three private subnets"
        for size in ("min_size", "max_size", "desired_size"):
            assert size in group, f"node group {name} has no {size}"
    # The general group keeps a node in each zone.
    for general in variable_values(root, envs, "${var.general_nodes}"):
        assert general["min_size"] >= 3, f"general_nodes.min_size {general['min_size']}"


def test_the_video_group_is_compute_optimised_and_tainted(root: Config, envs: dict[str, Config]):
    video = attr(root.modules["eks"], "eks_managed_node_groups")["video"]
    taints = list(video["taints"].values())
    assert {"key": "lane", "value": "video", "effect": "NO_SCHEDULE"} in taints
    # infra/k8s's video workers select this label.
    assert video["labels"].get("longhaul.dev/lane") == "video"
    assert video.get("capacity_type") == "ON_DEMAND"

    match = re.fullmatch(r"\$\{var\.(\w+)\.instance_types\}", str(video["instance_types"]))
    assert match, video["instance_types"]
    for nodes in variable_values(root, envs, f"${{var.{match.group(1)}}}"):
        assert nodes["instance_types"], "no instance types"
        for instance_type in nodes["instance_types"]:
            assert re.match(r"^c[67]i\.", instance_type), f"{instance_type} is not a c6i/c7i instance"


def test_the_general_group_is_not_tainted(root: Config):
    general = attr(root.modules["eks"], "eks_managed_node_groups")["general"]
    assert not general.get("taints")


# ---------------------------------------------------------------------------
# RDS
# ---------------------------------------------------------------------------


def test_rds_is_a_plain_resource(root: Config):
    assert root.resources.get("aws_db_instance"), "no aws_db_instance"
    for name, module in root.modules.items():
        assert "rds" not in str(attr(module, "source")), f"module {name} wraps RDS"


def test_rds_is_multi_az_encrypted_backed_up_and_protected(root: Config, envs: dict[str, Config]):
    for name, db in root.resources["aws_db_instance"].items():
        assert attr(db, "engine") == "postgres"
        assert attr(db, "multi_az") is True, f"{name}: multi_az"
        assert attr(db, "storage_encrypted") is True, f"{name}: storage_encrypted"
        assert re.search(r"aws_kms_key\.", str(attr(db, "kms_key_id"))), f"{name}: not encrypted with our key"
        assert attr(db, "deletion_protection") is True, f"{name}: deletion_protection"
        assert attr(db, "manage_master_user_password") is True, f"{name}: manage_master_user_password"
        assert "password" not in db, f"{name}: a password in the configuration"
        assert attr(db, "publicly_accessible") is False
        assert attr(db, "skip_final_snapshot") is False
        for retention in variable_values(root, envs, attr(db, "backup_retention_period")):
            assert isinstance(retention, int) and retention > 0, f"{name}: backup_retention_period {retention}"


def test_rds_only_takes_tls_connections(root: Config):
    for db in root.resources["aws_db_instance"].values():
        group = re.fullmatch(r"\$\{aws_db_parameter_group\.(\w+)\.name\}", str(attr(db, "parameter_group_name")))
        assert group
        parameters = {
            attr(p, "name"): str(attr(p, "value"))
            for p in blocks(root.resources["aws_db_parameter_group"][group.group(1)], "parameter")
        }
        assert parameters.get("rds.force_ssl") == "1"


def test_rds_is_reachable_from_the_nodes_only(root: Config):
    for rule in root.resources.get("aws_vpc_security_group_ingress_rule", {}).values():
        if "aws_security_group.db" in str(attr(rule, "security_group_id")):
            assert "cidr_ipv4" not in rule and "cidr_ipv6" not in rule
            assert "module.eks.node_security_group_id" in str(attr(rule, "referenced_security_group_id"))
    assert not blocks(root.resources["aws_security_group"]["db"], "ingress")


# ---------------------------------------------------------------------------
# SQS
# ---------------------------------------------------------------------------


def queues(root: Config) -> dict[str, dict]:
    return root.resources["aws_sqs_queue"]


def is_dlq(queue: dict) -> bool:
    return str(attr(queue, "name")).endswith("-dlq")


def test_there_is_a_queue_and_a_dlq_for_each_lane(root: Config):
    assert set(root.locals["lanes"]) == LANES
    lane_queues = {name: q for name, q in queues(root).items() if not is_dlq(q)}
    dlqs = {name: q for name, q in queues(root).items() if is_dlq(q)}
    assert lane_queues and dlqs
    for queue in list(lane_queues.values()) + list(dlqs.values()):
        assert expr(attr(queue, "for_each")) == "${local.lanes}", "queues are made per lane"
    # Named as the app expects: <prefix><lane> and <prefix><lane>-dlq.
    assert [expr(attr(q, "name")) for q in lane_queues.values()] == ["${local.queue_name_prefix}${each.key}"]
    assert [expr(attr(q, "name")) for q in dlqs.values()] == ["${local.queue_name_prefix}${each.key}-dlq"]
    assert not str(root.locals["queue_name_prefix"]).endswith(".fifo")


def test_every_lane_queue_redrives_to_its_dlq(root: Config, envs: dict[str, Config]):
    dlq_names = {name for name, q in queues(root).items() if is_dlq(q)}
    for name, queue in queues(root).items():
        if is_dlq(queue):
            assert "redrive_policy" not in queue, f"DLQ {name} has a DLQ of its own"
            continue
        policy = expr(attr(queue, "redrive_policy", ""))
        target = re.search(r"'deadLetterTargetArn':'\$\{aws_sqs_queue\.(\w+)\[each\.key\]\.arn\}'", policy)
        assert target, f"queue {name} has no redrive policy to a DLQ of its lane: {policy}"
        assert target.group(1) in dlq_names, f"queue {name} redrives to {target.group(1)}, not a DLQ"
        # A backstop 3 above longhaul's own limit (README, SQS).
        count = re.search(r"'maxReceiveCount':'\$\{var\.(\w+)\+3\}'", policy)
        assert count, f"queue {name}: maxReceiveCount must be LONGHAUL_SQS_MAX_RECEIVE_COUNT + 3: {policy}"
        for value in variable_values(root, envs, f"${{var.{count.group(1)}}}"):
            assert 1 <= value + 3 <= 1000


def test_every_dlq_only_takes_its_lane_queue(root: Config):
    dlq_names = {name for name, q in queues(root).items() if is_dlq(q)}
    allowed = {}
    for policy in root.resources.get("aws_sqs_queue_redrive_allow_policy", {}).values():
        dlq = re.fullmatch(r"\$\{aws_sqs_queue\.(\w+)\[each\.key\]\.id\}", expr(attr(policy, "queue_url")))
        assert dlq, attr(policy, "queue_url")
        allowed[dlq.group(1)] = expr(attr(policy, "redrive_allow_policy"))
    assert set(allowed) == dlq_names, "every DLQ has a redrive allow policy"
    for text in allowed.values():
        assert "'redrivePermission':'byQueue'" in text
        assert re.search(r"'sourceQueueArns':\['\$\{aws_sqs_queue\.\w+\[each\.key\]\.arn\}'\]", text), text


def test_every_queue_is_encrypted(root: Config):
    for name, queue in queues(root).items():
        sse = attr(queue, "sqs_managed_sse_enabled", False) is True
        kms = "kms_master_key_id" in queue
        assert sse or kms, f"queue {name} has no server-side encryption"


def test_queue_timeouts_and_retention(root: Config):
    lanes = root.locals["lanes"]
    for lane, settings in lanes.items():
        assert 0 < settings["visibility_timeout_seconds"] <= 43200, lane
    # The slowest lane's fallback visibility is the longest.
    assert lanes["video"]["visibility_timeout_seconds"] == max(s["visibility_timeout_seconds"] for s in lanes.values())
    retention = {name: attr(q, "message_retention_seconds") for name, q in queues(root).items()}
    for name, queue in queues(root).items():
        assert expr(attr(queue, "visibility_timeout_seconds")) == "${each.value.visibility_timeout_seconds}"
        assert attr(queue, "receive_wait_time_seconds") == 20
        assert isinstance(retention[name], int) and 3600 <= retention[name] <= 1209600
    # A DLQ keeps messages at least as long as its source queue.
    assert min(r for n, r in retention.items() if is_dlq(queues(root)[n])) >= max(
        r for n, r in retention.items() if not is_dlq(queues(root)[n])
    )


def test_queues_refuse_insecure_transport(root: Config):
    for policy in root.resources["aws_sqs_queue_policy"].values():
        document = re.fullmatch(r"\$\{data\.aws_iam_policy_document\.(\w+)\[each\.key\]\.json\}", expr(attr(policy, "policy")))
        assert document
        assert any(
            s.effect == "Deny" and ("Bool", "aws:SecureTransport", ["false"]) in s.conditions
            for s in statements(root)
            if s.document == document.group(1)
        )
    assert expr(attr(root.resources["aws_sqs_queue_policy"]["tls_only"], "for_each")) == "${local.all_queues}"


# ---------------------------------------------------------------------------
# SNS
# ---------------------------------------------------------------------------


def test_sns_topics_are_encrypted_with_our_key(root: Config):
    topics = root.resources.get("aws_sns_topic", {})
    assert topics
    for name, topic in topics.items():
        key = str(attr(topic, "kms_master_key_id", ""))
        assert re.fullmatch(r"\$\{aws_kms_key\.\w+(\[\"\w+\"\])?\.(arn|id)\}", key), f"topic {name}: {key!r}"


# ---------------------------------------------------------------------------
# S3
# ---------------------------------------------------------------------------


def bucket_config(root: Config, kind: str, bucket: str) -> dict:
    found = [
        body
        for body in root.resources.get(kind, {}).values()
        if expr(attr(body, "bucket")) in (f"${{aws_s3_bucket.{bucket}.id}}", f"${{aws_s3_bucket.{bucket}.bucket}}")
    ]
    assert len(found) == 1, f"bucket {bucket}: {len(found)} {kind}"
    return found[0]


def test_buckets_are_private(root: Config):
    buckets = root.resources.get("aws_s3_bucket", {})
    assert buckets
    for name, bucket in buckets.items():
        assert "acl" not in bucket, f"bucket {name} sets an ACL"
        block = bucket_config(root, "aws_s3_bucket_public_access_block", name)
        for setting in ("block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets"):
            assert attr(block, setting) is True, f"bucket {name}: {setting}"
        ownership = bucket_config(root, "aws_s3_bucket_ownership_controls", name)
        assert attr(blocks(ownership, "rule")[0], "object_ownership") == "BucketOwnerEnforced"


def test_buckets_are_encrypted_with_kms_and_versioned(root: Config):
    for name in root.resources["aws_s3_bucket"]:
        sse = bucket_config(root, "aws_s3_bucket_server_side_encryption_configuration", name)
        for rule in blocks(sse, "rule"):
            default = blocks(rule, "apply_server_side_encryption_by_default")[0]
            assert attr(default, "sse_algorithm") == "aws:kms", f"bucket {name} is not SSE-KMS"
            assert re.search(r"aws_kms_key\.", str(attr(default, "kms_master_key_id"))), f"bucket {name}: the AWS managed key"
        versioning = bucket_config(root, "aws_s3_bucket_versioning", name)
        assert attr(blocks(versioning, "versioning_configuration")[0], "status") == "Enabled"


def test_buckets_take_tls_only(root: Config):
    for name in root.resources["aws_s3_bucket"]:
        policy = bucket_config(root, "aws_s3_bucket_policy", name)
        document = re.fullmatch(r"\$\{data\.aws_iam_policy_document\.(\w+)\.json\}", expr(attr(policy, "policy")))
        assert document, f"bucket {name}: its policy is not an aws_iam_policy_document"
        denies = [
            s
            for s in statements(root)
            if s.document == document.group(1)
            and s.effect == "Deny"
            and ("Bool", "aws:SecureTransport", ["false"]) in s.conditions
        ]
        assert denies, f"bucket {name} has no TLS-only deny"
        deny = denies[0]
        assert deny.actions == ["s3:*"], "the TLS deny covers every S3 action"
        assert ("*", ["*"]) in deny.principals
        assert {f"${{aws_s3_bucket.{name}.arn}}", f"${{aws_s3_bucket.{name}.arn}}/*"} <= set(deny.resources)


def test_buckets_have_lifecycle_rules(root: Config):
    for name in root.resources["aws_s3_bucket"]:
        lifecycle = bucket_config(root, "aws_s3_bucket_lifecycle_configuration", name)
        rules = [r for r in blocks(lifecycle, "rule") if attr(r, "status") == "Enabled"]
        noncurrent = [r for r in rules if blocks(r, "noncurrent_version_expiration")]
        multipart = [r for r in rules if blocks(r, "abort_incomplete_multipart_upload")]
        assert noncurrent, f"bucket {name}: noncurrent versions never expire"
        assert multipart, f"bucket {name}: incomplete multipart uploads are never aborted"
        days = attr(blocks(multipart[0], "abort_incomplete_multipart_upload")[0], "days_after_initiation")
        assert isinstance(days, int) and 1 <= days <= 7


def lake_rules(root: Config) -> list[dict]:
    lifecycle = bucket_config(root, "aws_s3_bucket_lifecycle_configuration", "artifacts")
    return [
        r
        for r in blocks(lifecycle, "rule")
        if any(attr(f, "prefix", None) == "${local.lake_key_prefix}/events/" for f in blocks(r, "filter"))
    ]


def test_the_lake_is_beside_the_tenants_prefix(root: Config):
    # <prefix>/lake/, not under <prefix>/tenants/: the tenant-wide policies
    # of every worker and of the API do not reach it.
    assert root.locals["lake_key_prefix"] == "${var.object_store_prefix}/lake"
    assert root.locals["lake_objects_arn"] == "${aws_s3_bucket.artifacts.arn}/${local.lake_key_prefix}/*"
    assert not root.locals["lake_key_prefix"].startswith(root.locals["object_key_prefix"])


def test_lake_events_expire_and_leave_no_old_versions(root: Config, envs: dict[str, Config]):
    # One lifecycle configuration per bucket (test_buckets_have_lifecycle_rules):
    # the lake's rule is in it, for exactly the events prefix.
    [rule] = lake_rules(root)
    assert attr(rule, "status") == "Enabled"
    [lake_filter] = blocks(rule, "filter")
    assert set(k for k in lake_filter if not k.startswith("__")) == {"prefix"}, "the rule filters on the prefix alone"

    [expiration] = blocks(rule, "expiration")
    assert expr(attr(expiration, "days")) == "${var.lake_retention_days}"
    variable = root.variables["lake_retention_days"]
    assert attr(variable, "default") == 730, "two years by default"
    validations = [expr(attr(v, "condition")) for v in blocks(variable, "validation")]
    assert any("var.lake_retention_days>0" in v for v in validations), validations
    for days in variable_values(root, envs, "${var.lake_retention_days}"):
        assert isinstance(days, int) and days > 0, days

    # A personal-data deletion rewrites lake files: the versions it replaces
    # go after a day, not after artifact_noncurrent_version_days.
    [noncurrent] = blocks(rule, "noncurrent_version_expiration")
    assert attr(noncurrent, "noncurrent_days") == 1
    assert "newer_noncurrent_versions" not in noncurrent, "no noncurrent version may be kept"
    [multipart] = blocks(rule, "abort_incomplete_multipart_upload")
    assert attr(multipart, "days_after_initiation") == 1

    # The delete markers that expiration leaves are removed by the
    # bucket-wide rule.
    lifecycle = bucket_config(root, "aws_s3_bucket_lifecycle_configuration", "artifacts")
    markers = [
        r
        for r in blocks(lifecycle, "rule")
        if attr(r, "status") == "Enabled"
        and blocks(r, "filter") in ([{}], [])
        and any(attr(e, "expired_object_delete_marker", False) is True for e in blocks(r, "expiration"))
    ]
    assert markers, "expired lake files' delete markers would stay"


# ---------------------------------------------------------------------------
# IAM
# ---------------------------------------------------------------------------


def service_of(action: str) -> str:
    return action.split(":", 1)[0].lower() if ":" in action else action


def test_no_allow_grants_wildcard_actions_on_data_services(root: Config):
    found = statements(root)
    assert len(found) > 10, "the policy documents were not read"
    for s in found:
        if s.effect != "Allow":
            # A Deny may be broad (`s3:*` over plain HTTP): it takes rights away.
            continue
        for action in s.actions:
            assert action != "*", f"{s.document}/{s.sid}: Action \"*\""
            if service_of(action) in DATA_SERVICES:
                assert "*" not in action, f"{s.document}/{s.sid}: wildcard action {action}"


def test_no_allow_on_data_services_uses_resource_star(root: Config):
    key_policies = key_policy_documents(root)
    for s in statements(root):
        if s.effect != "Allow" or s.document in key_policies:
            continue
        data_actions = [a for a in s.actions if service_of(a) in DATA_SERVICES]
        if data_actions:
            assert "*" not in s.resources, f"{s.document}/{s.sid}: {data_actions} on Resource \"*\""
            for resource in s.resources:
                assert resource.startswith("${") or resource.startswith("arn:"), f"{s.document}/{s.sid}: {resource}"


def test_key_policies_delegate_to_this_account_only(root: Config):
    key_policies = key_policy_documents(root)
    assert key_policies
    for s in statements(root):
        if s.document not in key_policies:
            continue
        assert s.effect == "Allow"
        assert s.principals == [("AWS", ["arn:${local.partition}:iam::${local.account_id}:root"])], s.principals
        for action in s.actions:
            assert action.startswith("kms:") and "*" not in action, f"{s.document}/{s.sid}: {action}"


def test_kms_use_is_scoped_to_one_key_through_one_service(root: Config):
    key_policies = key_policy_documents(root)
    for s in statements(root):
        if s.effect != "Allow" or s.document in key_policies:
            continue
        if any(service_of(a) == "kms" for a in s.actions):
            assert all(re.fullmatch(r"\$\{aws_kms_key\.this\[\"\w+\"\]\.arn\}", r) for r in s.resources), s.resources
            assert any(c[1] == "kms:ViaService" for c in s.conditions), f"{s.document}/{s.sid}: no kms:ViaService"


def test_every_policy_is_a_checkable_document(root: Config):
    """Inline JSON would hide statements from the tests above."""
    policy_attributes = {
        "aws_iam_role_policy": "policy",
        "aws_iam_policy": "policy",
        "aws_s3_bucket_policy": "policy",
        "aws_sqs_queue_policy": "policy",
        "aws_sns_topic_policy": "policy",
        "aws_kms_key": "policy",
        "aws_iam_role": "assume_role_policy",
    }
    for kind, attribute in policy_attributes.items():
        for name, body in root.resources.get(kind, {}).items():
            text = str(attr(body, attribute))
            assert "jsonencode" not in text and "{" not in text.replace("${", ""), f"{kind}.{name}: inline policy"
    pod_policies = expr(root.locals["pod_identity_policies"])
    assert "jsonencode" not in pod_policies
    assert len(re.findall(r"data\.aws_iam_policy_document\.\w+(\[\w+\])?\.json", pod_policies)) == 5


def test_every_component_has_its_own_pod_identity_role(root: Config):
    identities = expr(root.locals["pod_identities"])
    assert "'api':{'namespace':'${var.app_namespace}','service_account':'longhaul-api'}" in identities
    assert re.search(r"forlaneinkeys\(local\.lanes\):\"worker-\$\{lane\}\"=>", identities), "one identity per worker lane"
    assert "'keda-operator':{'namespace':'keda','service_account':'keda-operator'}" in identities

    association = root.resources["aws_eks_pod_identity_association"]["this"]
    assert expr(attr(association, "for_each")) == "${local.pod_identities}"
    assert expr(attr(association, "role_arn")) == "${aws_iam_role.pod_identity[each.key].arn}"
    role = root.resources["aws_iam_role"]["pod_identity"]
    assert expr(attr(role, "for_each")) == "${local.pod_identities}"

    trust = re.fullmatch(
        r"\$\{data\.aws_iam_policy_document\.(\w+)\[each\.key\]\.json\}", expr(attr(role, "assume_role_policy"))
    )
    assert trust, "each role has a trust policy of its own"
    document = policy_documents(root)[trust.group(1)]
    assert expr(attr(document, "for_each")) == "${local.pod_identities}"
    [statement] = [s for s in statements(root) if s.document == trust.group(1)]
    assert statement.principals == [("Service", ["pods.eks.amazonaws.com"])]
    assert sorted(statement.actions) == ["sts:AssumeRole", "sts:TagSession"]
    # Pinned to this cluster and to the one service account (session tags).
    assert ("StringEquals", "aws:RequestTag/eks-cluster-arn", ["${module.eks.cluster_arn}"]) in statement.conditions
    assert ("StringEquals", "aws:RequestTag/kubernetes-namespace", ["${each.value.namespace}"]) in statement.conditions
    assert (
        "StringEquals",
        "aws:RequestTag/kubernetes-service-account",
        ["${each.value.service_account}"],
    ) in statement.conditions


def test_workers_receive_from_their_own_lane_only(root: Config):
    worker = [s for s in statements(root) if s.document == "worker"]
    assert worker
    receivers = [s for s in worker if "sqs:ReceiveMessage" in s.actions]
    assert receivers and all(s.resources == ["${aws_sqs_queue.lane[each.key].arn}"] for s in receivers)
    publishers = [s for s in worker if "sns:Publish" in s.actions]
    assert [s.sid for s in publishers] == ["PublishEvents", "MobilePush"]
    assert publishers[0].resources == ["${aws_sns_topic.events.arn}"]
    assert publishers[1].resources == ["${local.push_resource_arns}"]


def test_the_pusher_touches_this_stacks_push_applications_only(root: Config):
    arns = root.locals["push_resource_arns"]
    assert arns == [
        "arn:${local.partition}:sns:${local.region}:${local.account_id}:app/*/${local.name}-*",
        "arn:${local.partition}:sns:${local.region}:${local.account_id}:endpoint/*/${local.name}-*/*",
    ]
    apps = root.resources["aws_sns_platform_application"]
    assert set(apps) == {"ios", "android"}
    for app in apps.values():
        assert attr(app, "name").startswith("${local.name}-")
    variables = root.variables
    assert variables["apns_signing_key"]["sensitive"] and variables["fcm_service_account_json"]["sensitive"]


LAKE_DOCUMENTS = {"lake_read_write", "lake_read"}


def test_s3_access_is_under_the_tenants_prefix(root: Config):
    assert root.locals["tenant_objects_arn"] == "${aws_s3_bucket.artifacts.arn}/${local.object_key_prefix}/*"
    assert root.locals["object_key_prefix"] == "${var.object_store_prefix}/tenants"
    for s in statements(root):
        object_actions = [a for a in s.actions if (a.startswith("s3:") and "Object" in a) or a == "s3:AbortMultipartUpload"]
        if s.effect == "Allow" and object_actions:
            # The data lake's documents, and only they, name the lake instead.
            expected = "${local.lake_objects_arn}" if s.document in LAKE_DOCUMENTS else "${local.tenant_objects_arn}"
            assert s.resources == [expected], f"{s.document}/{s.sid}: {s.resources}"


def s3_grants(root: Config, document: str) -> dict[str, set[str]]:
    """What a policy document allows in S3: action -> the resources, with any
    s3:prefix condition appended to the bucket as `bucket?prefix=…`."""
    grants: dict[str, set[str]] = defaultdict(set)
    for s in statements(root):
        if s.document != document or s.effect != "Allow":
            continue
        prefixes = [v for test, var, values in s.conditions if var == "s3:prefix" for v in values]
        for action in s.actions:
            if not action.startswith("s3:"):
                continue
            for resource in s.resources:
                if prefixes:
                    grants[action] |= {f"{resource}?prefix={p}" for p in prefixes}
                else:
                    grants[action].add(resource)
    return grants


def test_only_the_data_lane_writes_the_lake_and_reports_read_it(root: Config):
    # Which role gets which lake policy: the data lane's worker (read, write,
    # delete) and the reports lane's (read, for funnel reports), no other.
    assert root.locals["lake_policies"] == {
        "worker-data": "${data.aws_iam_policy_document.lake_read_write.json}",
        "worker-reports": "${data.aws_iam_policy_document.lake_read.json}",
    }
    policy = root.resources["aws_iam_role_policy"]["lake"]
    assert expr(attr(policy, "for_each")) == "${local.lake_policies}"
    assert expr(attr(policy, "role")) == "${aws_iam_role.pod_identity[each.key].id}"
    assert expr(attr(policy, "policy")) == "${each.value}"
    assert "data" in root.locals["lanes"] and "reports" in root.locals["lanes"]

    lake = "${local.lake_objects_arn}"
    listing = "${aws_s3_bucket.artifacts.arn}?prefix=${local.lake_key_prefix}/*"
    write = s3_grants(root, "lake_read_write")
    assert write == {
        "s3:ListBucket": {listing},
        "s3:GetObject": {lake},
        "s3:PutObject": {lake},
        "s3:DeleteObject": {lake},
        "s3:AbortMultipartUpload": {lake},
    }, dict(write)
    read = s3_grants(root, "lake_read")
    assert read == {"s3:ListBucket": {listing}, "s3:GetObject": {lake}}, dict(read)
    # Listing is limited to the lake's keys by a condition that requires the
    # prefix (not ...IfExists, which would let a listing without one through).
    for document in LAKE_DOCUMENTS:
        for s in statements(root):
            if s.document == document and "s3:ListBucket" in s.actions:
                assert s.conditions == [("StringLike", "s3:prefix", ["${local.lake_key_prefix}/*"])], s.conditions


def test_the_api_and_the_other_lanes_have_no_lake_access(root: Config):
    # The lake's ARN and prefix appear in the lake documents only: not in the
    # API's policy, nor in the worker policy every lane shares.
    for s in statements(root):
        if s.document in LAKE_DOCUMENTS:
            continue
        text = repr((s.resources, s.conditions))
        assert "lake" not in text, f"{s.document}/{s.sid} reaches the lake: {text}"
    pod_policies = expr(root.locals["pod_identity_policies"])
    assert "lake" not in pod_policies
    # No other inline policy is attached to a role.
    assert set(root.resources["aws_iam_role_policy"]) == {"pod_identity", "lake"}
    assert "api" not in root.locals["lake_policies"]


def test_keda_reads_queue_depth_only(root: Config):
    [statement] = [s for s in statements(root) if s.document == "keda_operator"]
    assert statement.actions == ["sqs:GetQueueAttributes"]
    assert statement.resources == ["${local.lane_queue_arns}"]


# ---------------------------------------------------------------------------
# KEDA and versions
# ---------------------------------------------------------------------------


def test_keda_is_a_helm_release_with_a_pinned_version(root: Config, envs: dict[str, Config]):
    releases = root.resources.get("helm_release", {})
    keda = [r for r in releases.values() if attr(r, "chart") == "keda"]
    assert len(keda) == 1, "KEDA is installed by one helm_release"
    assert attr(keda[0], "repository") == "https://kedacore.github.io/charts"
    for release in releases.values():
        for version in variable_values(root, envs, attr(release, "version")):
            assert re.fullmatch(r"\d+\.\d+\.\d+", version), f"{attr(release, 'chart')} is not pinned: {version!r}"


def test_providers_are_pinned(root: Config, envs: dict[str, Config]):
    for where, config in [("root", root)] + [(f"envs/{e}", c) for e, c in envs.items()]:
        [terraform] = [t for t in config.terraform if "required_providers" in t]
        providers = blocks(terraform, "required_providers")[0]
        aws = unwrap(providers["aws"])
        helm = unwrap(providers["helm"])
        assert aws["source"] == "hashicorp/aws" and re.fullmatch(r"~>\s*6(\.\d+)*", aws["version"]), f"{where}: aws {aws}"
        assert helm["source"] == "hashicorp/helm" and re.fullmatch(r"~>\s*\d+(\.\d+)*", helm["version"]), f"{where}: helm {helm}"


def test_the_root_module_configures_no_provider(root: Config):
    assert not root.providers, "providers are configured by envs/*, not by the module they call"


# ---------------------------------------------------------------------------
# Environments and outputs
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("env", ENVS)
def test_each_environment_calls_the_root_module(env: str, root: Config, envs: dict[str, Config]):
    config = envs[env]
    module = config.modules["longhaul"]
    assert attr(module, "source") == "../../"
    assert attr(module, "environment") == env
    # Every input it passes exists, and every required input is passed.
    for name in module:
        if not name.startswith("__") and name != "source":
            assert name in root.variables, f"envs/{env} passes unknown input {name}"
    for name, variable in root.variables.items():
        if "default" not in variable:
            assert name in module, f"envs/{env} does not pass the required input {name}"

    [backend] = [b for t in config.terraform for b in blocks(t, "backend")]
    s3 = backend["s3"]
    assert attr(s3, "use_lockfile") is True
    assert attr(s3, "encrypt") is True
    assert env in attr(s3, "key")
    assert {"aws", "helm"} <= set(config.providers)

    # Outputs pass the root's through.
    assert set(config.outputs) == set(root.outputs)
    for name, output in config.outputs.items():
        assert expr(attr(output, "value")) == f"${{module.longhaul.{name}}}"


def test_outputs_are_the_environment_a_deployment_needs(root: Config):
    common = root.locals["common_env"]
    assert set(common) == {
        "AWS_REGION",
        "LONGHAUL_QUEUE",
        "LONGHAUL_SQS_QUEUE_PREFIX",
        "LONGHAUL_SQS_MAX_RECEIVE_COUNT",
        "LONGHAUL_OBJECT_STORE",
        "LONGHAUL_S3_KMS_KEY_ID",
    }
    assert common["LONGHAUL_QUEUE"] == "sqs"
    assert expr(common["LONGHAUL_OBJECT_STORE"]) == "s3://${aws_s3_bucket.artifacts.bucket}/${var.object_store_prefix}"
    assert expr(root.locals["sqs_queue_url_prefix"]) == '${trimsuffix(aws_sqs_queue.lane["default"].url,"default")}'
    lane_urls = expr(root.locals["lane_queue_url_env"])
    assert lane_urls == '${{forlaneinkeys(local.lanes):"LONGHAUL_SQS_QUEUE_URL_${upper(lane)}"=>aws_sqs_queue.lane[lane].url}}'
    api = expr(root.locals["api_env"])
    worker = expr(root.locals["worker_env"])
    assert api.startswith("${merge(local.common_env,local.lane_queue_url_env,") and "'LONGHAUL_JWKS_URL'" in api
    assert "cognito-idp" in api and "/.well-known/jwks.json" in api
    assert worker.startswith("${merge(local.common_env,local.lane_queue_url_env,") and "'LONGHAUL_SNS_TOPIC_ARN'" in worker
    assert expr(attr(root.outputs["api_env"], "value")) == "${local.api_env}"
    assert expr(attr(root.outputs["worker_env"], "value")) == "${local.worker_env}"
    secrets = attr(root.outputs["secret_env"], "value")
    assert set(secrets) == {"LONGHAUL_DATABASE_URL", "LONGHAUL_SECRET_KEYS"}
    assert secrets["LONGHAUL_DATABASE_URL"]["template"].startswith("postgres://")
    assert "master_user_secret[0].secret_arn" in secrets["LONGHAUL_DATABASE_URL"]["secret_arn"]
    for name in ("database", "sqs_queues", "service_accounts", "cluster_name", "keda", "sns_topic_arn"):
        assert name in root.outputs


# ---------------------------------------------------------------------------
# checkov skips
# ---------------------------------------------------------------------------


def test_every_checkov_skip_is_justified():
    skips = []
    for path in tf_files():
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if "checkov:skip" in line:
                match = re.search(r"#checkov:skip=(CKV2?_[A-Z0-9]+_\d+):(.*)$", line)
                assert match, f"{path}:{number}: not `#checkov:skip=CKV_…:reason`"
                reason = match.group(2).strip()
                assert len(reason.split()) >= 12, f"{path}:{number}: {match.group(1)} is skipped without a real reason"
                skips.append(match.group(1))
    assert skips, "no skip found: the scan above would not see a badly formed one either"
