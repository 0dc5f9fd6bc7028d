"""A mirror of download.docker.com's Debian layout built for tests: Docker's names and versions, Debian's binaries, our key.

What it is: the layout of https://download.docker.com/linux/debian (``gpg``, ``dists/SUITE/{stable,test}/
binary-ARCH/Packages``, a signed ``Release``/``InRelease``/``Release.gpg``, ``dists/SUITE/pool/CHANNEL/ARCH/``)
holding ``docker-ce``, ``docker-ce-cli``, ``containerd.io``, ``docker-buildx-plugin`` and
``docker-compose-plugin`` with Docker's version scheme (``5:26.1.5-1~debian.13~trixie``) and Docker's
Depends/Conflicts/Provides, whose files are Debian's own binaries (docker.io, docker-cli, containerd,
runc, tini, docker-compose v2, docker-buildx) downloaded from the Debian archive, checked against
Debian's signed indices, and repackaged with dpkg-deb. The repository is signed by a key generated
here with gpg. So dockerd really starts and ``docker compose version`` really answers.

What it proves: serverprep's handling of Docker's repository (key, deb822 source, suite, channel,
conflicting packages, version pins, a mirror that is down or signed by the wrong key) against a
real apt. What it does not prove: anything about Docker's own packages or download.docker.com.

Faithful only where Debian's packages allow it (see ``NotFaithful``): Debian 13 has everything;
Debian 12 uses its own engine, containerd and runc, with Debian 13's compose v2 and buildx plugins
(Go binaries needing glibc 2.34, which Debian 12 has; Debian 12 packages only compose v1); Debian 11's
glibc 2.31 runs neither plugin nor a second engine version, so it gets no mirror.
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import gzip
import hashlib
import http.server
import lzma
import re
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator
from email.utils import formatdate
from pathlib import Path

from harness.targets import CACHE, _unique_loopback, free_port
from harness.targets import MIRROR as DEBIAN_MIRROR

#: Bump when what a build produces changes: the cache is keyed by it.
RECIPE = 2
ROOT = CACHE / f"docker-mirror-r{RECIPE}"
RELEASE_NUMBERS = {"bullseye": "11", "bookworm": "12", "trixie": "13"}
CHANNELS = ("stable", "test")
DEBIAN_KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
DOWNLOAD_TIMEOUT = 120
MAINTAINER = "serverprep tests <test-mirror@serverprep.invalid>"
NOTE = "Repackaged for serverprep's tests from Debian's {source} {version} ({release}); not Docker's package."

# Engines offered, newest first: (Debian release, package with dockerd, package with the docker CLI).
ENGINES = (("trixie", "docker.io", "docker-cli"), ("bookworm", "docker.io", "docker.io"))
# CLI plugins: Docker package -> (Debian release, Debian package, the plugin file in it).
PLUGINS = {
    "docker-buildx-plugin": ("trixie", "docker-buildx", "usr/libexec/docker/cli-plugins/docker-buildx"),
    "docker-compose-plugin": ("trixie", "docker-compose", "usr/libexec/docker/cli-plugins/docker-compose"),
}
# Dependencies Docker's packages replace with their own.
REPLACED = {"containerd", "runc", "tini", "docker-cli", "docker.io"}


class NotFaithful(Exception):
    """Debian's packages cannot make a faithful mirror for this release; the message says why."""


# -- the Debian archive, verified -------------------------------------------------------------


def _download(url: str, dest: Path, sha256: str = "") -> Path:
    if dest.exists() and (not sha256 or _sha256(dest) == sha256):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".part")
    with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as response, open(partial, "wb") as out:
        shutil.copyfileobj(response, out)
    if sha256 and _sha256(partial) != sha256:
        partial.unlink()
        raise RuntimeError(f"{url}: SHA256 differs from Debian's signed index")
    partial.rename(dest)
    return dest


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _stanzas(text: str) -> Iterator[dict[str, str]]:
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        key = ""
        for line in block.splitlines():
            if line[:1] in (" ", "\t") and key:
                fields[key] += "\n" + line
            elif ":" in line:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        if fields:
            yield fields


class DebianIndex:
    """One release's main/binary-ARCH index from the Debian archive, its InRelease checked with gpgv."""

    def __init__(self, release: str, arch: str):
        self.release, self.arch = release, arch
        base = f"{DEBIAN_MIRROR}/dists/{release}"
        where = ROOT / "debian" / release
        # Always today's: the archive drops superseded .debs, so an old index can name files that are gone.
        (where / "InRelease").unlink(missing_ok=True)
        inrelease = _download(f"{base}/InRelease", where / "InRelease")
        if not DEBIAN_KEYRING.exists():
            raise RuntimeError(f"{DEBIAN_KEYRING} is missing (package debian-archive-keyring): cannot check Debian's signatures")
        check = subprocess.run(["gpgv", "--keyring", str(DEBIAN_KEYRING), str(inrelease)], capture_output=True, text=True)
        if check.returncode != 0:
            inrelease.unlink()
            raise RuntimeError(f"Debian's {release} InRelease does not verify: {check.stderr.strip()}")
        name = f"main/binary-{arch}/Packages.xz"
        sha = re.search(rf"^ ([0-9a-f]{{64}}) +\d+ {re.escape(name)}$", inrelease.read_text(), re.M)
        if not sha:
            raise RuntimeError(f"Debian's {release} InRelease lists no {name}")
        packages = _download(f"{base}/{name}", where / "Packages.xz", sha.group(1))
        self.packages: dict[str, dict[str, str]] = {}
        self.provides: dict[str, list[str]] = collections.defaultdict(list)
        for stanza in _stanzas(lzma.decompress(packages.read_bytes()).decode()):
            self.packages[stanza["Package"]] = stanza
            for provided in filter(None, stanza.get("Provides", "").split(",")):
                name_, _, version = provided.strip().partition(" ")
                self.provides[name_].append(version.strip("()= "))

    def get(self, package: str) -> dict[str, str]:
        if package not in self.packages:
            raise NotFaithful(f"Debian {self.release} has no package {package}")
        return self.packages[package]

    def deb(self, package: str) -> Path:
        """The verified .deb of ``package``, downloaded once into the cache."""
        stanza = self.get(package)
        return _download(f"{DEBIAN_MIRROR}/{stanza['Filename']}", ROOT / "debian" / stanza["Filename"], stanza["SHA256"])

    def unmet(self, depends: str) -> list[str]:
        """The clauses of ``depends`` nothing in this release satisfies."""
        return [clause for clause in _split(depends) if not any(self._satisfies(alt) for alt in clause.split("|"))]

    def _satisfies(self, alternative: str) -> bool:
        m = re.fullmatch(r"\s*([^\s(:]+)(?::\S+)?\s*(?:\(\s*(<<|<=|=|>=|>>)\s*([^)\s]+)\s*\))?\s*", alternative)
        if not m:
            return False
        name, op, version = m.groups()
        candidates = [self.packages[name]["Version"]] if name in self.packages else []
        if not op:
            return bool(candidates) or name in self.provides
        candidates += [v for v in self.provides.get(name, []) if v]
        return any(_version_holds(c, op, version) for c in candidates)


def _split(depends: str) -> list[str]:
    return [c.strip() for c in depends.split(",") if c.strip()]


def _version_holds(have: str, op: str, want: str) -> bool:
    dpkg_op = {"<<": "lt", "<=": "le", "=": "eq", ">=": "ge", ">>": "gt"}[op]
    return subprocess.run(["dpkg", "--compare-versions", have, dpkg_op, want]).returncode == 0


def _upstream(version: str) -> str:
    m = re.match(r"(?:\d+:)?(\d+(?:\.\d+)*)", version)
    assert m, version
    return m.group(1)


# -- repackaging -----------------------------------------------------------------------------------


def _unpack(deb: Path, into: Path) -> Path:
    into.mkdir(parents=True)
    subprocess.run(["dpkg-deb", "-R", str(deb), str(into)], check=True)
    for stale in ("md5sums", "control", "conffiles", "shlibs", "triggers", "symbols"):
        (into / "DEBIAN" / stale).unlink(missing_ok=True)
    shutil.rmtree(into / "usr/share/lintian", ignore_errors=True)
    return into


def _move(tree: Path, src: str, dst: str) -> None:
    (tree / dst).parent.mkdir(parents=True, exist_ok=True)
    (tree / src).rename(tree / dst)


def _build(tree: Path, control: dict[str, str], pool: Path) -> Path:
    """Write DEBIAN/control, conffiles and md5sums for ``tree`` and build it into ``pool``."""
    files = [p for p in sorted(tree.rglob("*")) if "DEBIAN" not in p.relative_to(tree).parts and p.is_file() and not p.is_symlink()]
    conffiles = [f"/{p.relative_to(tree)}" for p in files if p.relative_to(tree).parts[0] == "etc"]
    (tree / "DEBIAN").mkdir(exist_ok=True)
    if conffiles:
        (tree / "DEBIAN/conffiles").write_text("".join(f"{c}\n" for c in conffiles))
    (tree / "DEBIAN/md5sums").write_text("".join(f"{hashlib.md5(p.read_bytes()).hexdigest()}  {p.relative_to(tree)}\n" for p in files))
    control = {"Installed-Size": str(sum((p.stat().st_size + 1023) // 1024 for p in files)), **control}
    (tree / "DEBIAN/control").write_text("".join(f"{k}: {v}\n" for k, v in control.items() if v))
    name = f"{control['Package']}_{control['Version'].split(':', 1)[-1]}_{control['Architecture']}.deb"
    pool.mkdir(parents=True, exist_ok=True)
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "-b", str(tree), str(pool / name)], check=True, stdout=subprocess.DEVNULL)
    return pool / name


def _libs(depends: str, *names: str) -> str:
    """The clauses of ``depends`` on the given libraries (a repackaged binary needs what the original did)."""
    return ", ".join(c for c in _split(depends) if c.split()[0] in names)


def _minimum_version(clause: str) -> _SortKey:
    """The version a ``name (>= version)`` clause asks for, for picking the stricter of two."""
    m = re.search(r">=\s*([^)\s]+)", clause)
    return _SortKey(m.group(1) if m else "0")


def _control(package: str, version: str, arch: str, source: dict[str, str], release: str, **fields: str) -> dict[str, str]:
    return {
        "Package": package, "Version": version, "Architecture": arch, "Maintainer": MAINTAINER,
        "Section": "admin", "Priority": "optional", **fields,
        "Description": f"{package} for serverprep's test mirror\n "
        + NOTE.format(source=source["Package"], version=source["Version"], release=release),
    }


def _docker_ce(index: DebianIndex, work: Path, suffix: str, pool: Path) -> list[Path]:
    """docker-ce and docker-ce-cli from one Debian release's engine, CLI and tini, versioned like Docker's."""
    release = index.release
    _, engine_pkg, cli_pkg = next(e for e in ENGINES if e[0] == release)
    engine, cli = index.get(engine_pkg), index.get(cli_pkg)
    version = f"5:{_upstream(engine['Version'])}-1{suffix}"
    tree = _unpack(index.deb(engine_pkg), work / f"docker-ce-{release}")
    for sbin in ("dockerd", "docker-proxy"):
        _move(tree, f"usr/sbin/{sbin}", f"usr/bin/{sbin}")
    # Debian links docker-init to tini's static build; Docker ships the binary itself.
    (tree / "usr/bin/docker-init").unlink()
    tini_tree = _unpack(index.deb("tini"), work / f"tini-{release}")
    shutil.copy2(tini_tree / "usr/bin/tini-static", tree / "usr/bin/docker-init")
    units = [tree / d / "systemd/system/docker.service" for d in ("lib", "usr/lib")] + [tree / "etc/init.d/docker"]
    for unit in filter(Path.exists, units):
        unit.write_text(unit.read_text().replace("/usr/sbin/dockerd", "/usr/bin/dockerd"))
    cli_tree = work / f"docker-ce-cli-{release}"
    if cli_pkg == engine_pkg:  # before Debian 13 the CLI is inside docker.io: split it out
        for rel in ("usr/bin/docker", "usr/share/bash-completion", "usr/share/fish", "usr/share/zsh"):
            if (tree / rel).exists():
                (cli_tree / rel).parent.mkdir(parents=True, exist_ok=True)
                (tree / rel).rename(cli_tree / rel)
        for extra in ("usr/bin/dnet", "usr/bin/ovrouter"):  # libnetwork's debugging tools
            (tree / extra).unlink(missing_ok=True)
    else:
        _unpack(index.deb(cli_pkg), cli_tree)
        shutil.rmtree(cli_tree / "usr/share/doc", ignore_errors=True)
    (cli_tree / "usr/share/doc/docker-ce-cli").mkdir(parents=True)
    shutil.copy2(tree / f"usr/share/doc/{engine_pkg}/copyright", cli_tree / "usr/share/doc/docker-ce-cli/copyright")
    _move(tree, f"usr/share/doc/{engine_pkg}", "usr/share/doc/docker-ce")
    keep = [c for c in _split(engine["Depends"]) if c.split()[0] not in REPLACED]
    ce = _control(
        "docker-ce", version, index.arch, engine, release,
        **{"Pre-Depends": "init-system-helpers (>= 1.54~)",
           "Depends": ", ".join(["containerd.io (>= 1.4~)", "docker-ce-cli", *keep]),
           "Recommends": "apparmor, ca-certificates, docker-ce-rootless-extras, git, pigz, procps, xz-utils",
           "Conflicts": "docker.io", "Replaces": "docker-ce-cli (<< 5:0)", "Homepage": "https://www.docker.com"},
    )
    cli_control = _control(
        "docker-ce-cli", version, index.arch, cli, release,
        Depends=_libs(cli["Depends"], "libc6"), Recommends="docker-buildx-plugin, docker-compose-plugin",
        Conflicts="docker.io, docker-cli", Replaces="docker-ce (<< 5:0)", Breaks="docker-ce (<< 5:0)",
    )
    return [_build(tree, ce, pool), _build(cli_tree, cli_control, pool)]


def _containerd_io(index: DebianIndex, work: Path, pool: Path) -> Path:
    containerd, runc = index.get("containerd"), index.get("runc")
    tree = _unpack(index.deb("containerd"), work / "containerd.io")
    runc_tree = _unpack(index.deb("runc"), work / "runc")
    (runc_tree / "usr/bin/runc").unlink(missing_ok=True)  # Debian's symlink to ../sbin/runc
    _move(runc_tree, "usr/sbin/runc", "usr/bin/runc")
    shutil.copytree(runc_tree / "usr", tree / "usr", dirs_exist_ok=True, symlinks=True)
    shutil.rmtree(tree / "usr/share/doc/runc", ignore_errors=True)
    _move(tree, "usr/share/doc/containerd", "usr/share/doc/containerd.io")
    libc = max(_libs(containerd["Depends"], "libc6"), _libs(runc["Depends"], "libc6"), key=_minimum_version)
    depends = ", ".join(filter(None, [libc, _libs(runc["Depends"], "libseccomp2")]))
    control = _control(
        "containerd.io", f"{_upstream(containerd['Version'])}-1", index.arch, containerd, index.release,
        Depends=depends, Provides="containerd, runc", Conflicts="containerd, runc", Replaces="containerd, runc",
        Homepage="https://containerd.io",
    )
    return _build(tree, control, pool)


def _plugin(package: str, index: DebianIndex, work: Path, suffix: str, pool: Path) -> Path:
    _, source_pkg, path = PLUGINS[package]
    source = index.get(source_pkg)
    unpacked = _unpack(index.deb(source_pkg), work / f"src-{package}")
    tree = work / package
    (tree / Path(path).parent).mkdir(parents=True)
    shutil.copy2(unpacked / path, tree / path)
    (tree / "usr/share/doc" / package).mkdir(parents=True)
    shutil.copy2(unpacked / "usr/share/doc" / source_pkg / "copyright", tree / "usr/share/doc" / package / "copyright")
    extra = {"Replaces": "docker-ce-cli"} if package == "docker-buildx-plugin" else {}
    control = _control(package, f"{_upstream(source['Version'])}-1{suffix}", index.arch, source, index.release,
                       Depends=_libs(source["Depends"], "libc6"), Enhances="docker-ce-cli", **extra)
    return _build(tree, control, pool)


# -- the recipe, checked against the target release ---------------------------------------------


def _host_arch() -> str:
    return subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True, check=True).stdout.strip()


def plan_release(release: str, arch: str) -> dict[str, list[DebianIndex]]:
    """Which Debian releases' packages each Docker package of ``release`` is built from, or NotFaithful."""
    if release not in RELEASE_NUMBERS:
        raise NotFaithful(f"no recipe for Debian {release!r} (known: {', '.join(RELEASE_NUMBERS)})")
    target = DebianIndex(release, arch)
    indices = {release: target}
    problems: list[str] = []
    recipe: dict[str, list[DebianIndex]] = {"docker-ce": [], "containerd.io": [target]}

    def source_index(name: str) -> DebianIndex:
        if name not in indices:
            indices[name] = DebianIndex(name, arch)
        return indices[name]

    def runs_on_target(what: str, index: DebianIndex, *packages: str) -> bool:
        unmet = [f"{c} (from Debian {index.release}'s {p})" for p in dict.fromkeys(packages)
                 for c in target.unmet(", ".join(c for c in _split(index.get(p).get("Depends", "")) if c.split()[0] not in REPLACED))]
        if unmet:
            problems.append(f"{what}: Debian {release} lacks {'; '.join(unmet)}")
        return not unmet

    for engine_release, engine_pkg, cli_pkg in ENGINES:
        index = source_index(engine_release)
        if runs_on_target(f"docker-ce {_upstream(index.get(engine_pkg)['Version'])}", index, engine_pkg, cli_pkg):
            recipe["docker-ce"].append(index)
    for package, (source_release, source_pkg, _) in PLUGINS.items():
        index = source_index(source_release)
        recipe[package] = [index] if runs_on_target(package, index, source_pkg) else []
    runs_on_target("containerd.io", target, "containerd", "runc")
    if len(recipe["docker-ce"]) < 2:
        problems.append(f"only {len(recipe['docker-ce'])} docker-ce version(s) run on Debian {release}; a pin needs two")
    if problems or not all(recipe.values()):
        raise NotFaithful(f"no faithful Docker mirror for Debian {release}: " + "; ".join(problems))
    return recipe


def build(release: str) -> Path:
    """The mirror tree for ``release`` (``ROOT/release``), built once and cached; NotFaithful if it cannot be."""
    ROOT.mkdir(parents=True, exist_ok=True)
    for old in CACHE.glob("docker-mirror-r*"):
        if old.name in (ROOT.name, f"{ROOT.name}.lock"):
            continue
        if old.is_dir():  # an older recipe's build is never used again
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink(missing_ok=True)
    tree = ROOT / release
    with open(CACHE / f"{ROOT.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (tree / "complete").exists():
            return tree
        keys = _keys()
        arch = _host_arch()
        recipe = plan_release(release, arch)
        work = Path(tempfile.mkdtemp(prefix=f"build-{release}-", dir=ROOT))
        try:
            suffix = f"~debian.{RELEASE_NUMBERS[release]}~{release}"
            repo = work / "out/linux/debian"
            pool = repo / "dists" / release / "pool/stable" / arch
            for index in recipe["docker-ce"]:
                _docker_ce(index, work / f"ce-{index.release}", suffix, pool)
            _containerd_io(recipe["containerd.io"][0], work / "containerd", pool)
            for package in PLUGINS:
                _plugin(package, recipe[package][0], work / "plugins", suffix, pool)
            _index_and_sign(repo, release, arch, keys, work / "out/wrong-signature")
            shutil.rmtree(tree, ignore_errors=True)
            (work / "out").rename(tree)
            (tree / "complete").write_text(time.strftime("%Y-%m-%d %H:%M:%S\n"))
        finally:
            shutil.rmtree(work, ignore_errors=True)
            # Debian's .debs are in the built packages now; the small signed indices stay for plan_release.
            shutil.rmtree(ROOT / "debian/pool", ignore_errors=True)
    return tree


def _index_and_sign(repo: Path, release: str, arch: str, keys: dict[str, Path], wrong: Path) -> None:
    dists = repo / "dists" / release
    stable_pool = dists / "pool/stable" / arch
    (dists / "pool/test").mkdir(parents=True)
    # Docker's test channel carries the stable releases too; hard links cost no space.
    shutil.copytree(stable_pool, dists / "pool/test" / arch, copy_function=lambda s, d: Path(d).hardlink_to(s))
    listed = []
    for channel in CHANNELS:
        scan = subprocess.run(["dpkg-scanpackages", "-m", f"dists/{release}/pool/{channel}/{arch}", "/dev/null"],
                              cwd=repo, capture_output=True, text=True, check=True)
        binary = dists / channel / f"binary-{arch}"
        binary.mkdir(parents=True)
        (binary / "Packages").write_text(scan.stdout)
        with gzip.open(binary / "Packages.gz", "wt") as out:
            out.write(scan.stdout)
        listed += [f"{channel}/binary-{arch}/Packages", f"{channel}/binary-{arch}/Packages.gz"]
    lines = [
        "Origin: serverprep-test-mirror", "Label: Docker CE layout, built for serverprep's tests",
        f"Suite: {release}", f"Codename: {release}", f"Date: {formatdate(usegmt=True)}",
        f"Architectures: {arch}", f"Components: {' '.join(CHANNELS)}",
        f"Description: Docker's layout and package names over Debian's binaries (not Docker's packages) for Debian {release}",
    ]
    for field, algorithm in (("MD5Sum", "md5"), ("SHA1", "sha1"), ("SHA256", "sha256"), ("SHA512", "sha512")):
        lines.append(f"{field}:")
        for name in listed:
            data = (dists / name).read_bytes()
            lines.append(f" {hashlib.new(algorithm, data).hexdigest()} {len(data):>8} {name}")
    (dists / "Release").write_text("\n".join(lines) + "\n")
    _sign(keys["good"], dists)
    wrong.mkdir(parents=True)
    shutil.copy2(dists / "Release", wrong / "Release")
    _sign(keys["impostor"], wrong)


def _gpg(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["gpg", "--homedir", str(home), "--batch", "--yes", "--pinentry-mode", "loopback",
                           "--passphrase", "", *args], capture_output=True, text=True, check=True)


def _sign(home: Path, where: Path) -> None:
    try:
        _gpg(home, "--clearsign", "--output", str(where / "InRelease"), str(where / "Release"))
        _gpg(home, "--armor", "--detach-sign", "--output", str(where / "Release.gpg"), str(where / "Release"))
    finally:
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], capture_output=True)


def _keys() -> dict[str, Path]:
    """The repository key and an impostor's (for the wrong-signature switch), generated once with gpg."""
    homes = {}
    for name in ("good", "impostor"):
        home = ROOT / "keys" / name
        if not (home / "public.asc").exists():
            shutil.rmtree(home, ignore_errors=True)
            home.mkdir(parents=True, mode=0o700)
            try:
                _gpg(home, "--quick-generate-key", f"serverprep test mirror, {name} key (built for tests, not Docker's) "
                     "<test-mirror@serverprep.invalid>", "ed25519", "sign", "never")
                public = _gpg(home, "--armor", "--export").stdout
            finally:
                subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], capture_output=True)
            (home / "public.asc").write_text(public)
        homes[name] = home
    return homes


def _fingerprint(home: Path) -> str:
    listing = _gpg(home, "--with-colons", "--list-keys").stdout
    return next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))


def docker_ce_versions(tree: Path, channel: str = "stable") -> list[str]:
    """docker-ce versions a built tree offers in ``channel``, newest first."""
    packages = next((tree / "linux/debian/dists").glob(f"*/{channel}/binary-*/Packages")).read_text()
    versions = [s["Version"] for s in _stanzas(packages) if s["Package"] == "docker-ce"]
    return sorted(versions, key=_SortKey, reverse=True)


class _SortKey:
    def __init__(self, version: str):
        self.version = version

    def __lt__(self, other: _SortKey) -> bool:
        return _version_holds(self.version, "<<", other.version)


# -- serving ------------------------------------------------------------------------------------


class DockerMirror:
    """Serves built trees at ``url`` (``/linux/debian/...``) on a loopback address of its own.

    Switches for the tests: ``stop()`` (connection refused until ``start()``), ``mode = "unavailable"``
    (503 for everything), ``mode = "index-unavailable"`` (503 for ``dists/``, the key still served, as
    a caching proxy whose upstream is down) and ``mode = "wrong-signature"`` (InRelease and Release.gpg
    signed by another key than the one at ``/linux/debian/gpg``). ``requests`` holds the last paths asked for.
    """

    def __init__(self, releases: Iterable[str]):
        self.trees = {release: build(release) for release in releases}
        self.key = ROOT / "keys/good/public.asc"
        #: Long key IDs (16 hex digits) of the repository key and of the impostor's, as apt names them.
        self.key_id, self.impostor_key_id = (_fingerprint(ROOT / "keys" / name)[-16:] for name in ("good", "impostor"))
        self.host = _unique_loopback()
        self.port = free_port(self.host)
        self.mode = "ok"
        self.requests: collections.deque[str] = collections.deque(maxlen=2000)
        self._server: http.server.ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def versions(self, release: str) -> list[str]:
        return docker_ce_versions(self.trees[release])

    def start(self) -> None:
        if self._server is None:
            mirror = self

            class Handler(_Handler):
                owner = mirror

            http.server.ThreadingHTTPServer.allow_reuse_address = True
            self._server = http.server.ThreadingHTTPServer((self.host, self.port), Handler)
            self._server.daemon_threads = True
            threading.Thread(target=self._server.serve_forever, name="docker-mirror", daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> DockerMirror:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def resolve(self, path: str) -> Path | None:
        parts = [p for p in path.split("/") if p]
        if parts == ["linux", "debian", "gpg"]:
            return self.key
        if len(parts) < 5 or parts[:3] != ["linux", "debian", "dists"] or ".." in parts or parts[3] not in self.trees:
            return None
        tree = self.trees[parts[3]]
        if self.mode == "wrong-signature" and len(parts) == 5 and parts[4] in ("InRelease", "Release.gpg"):
            return tree / "wrong-signature" / parts[4]
        return tree.joinpath(*parts)


class _Handler(http.server.BaseHTTPRequestHandler):
    owner: DockerMirror

    def do_GET(self) -> None:
        self._answer(body=True)

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def _answer(self, body: bool) -> None:
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        self.owner.requests.append(path)
        mode = self.owner.mode
        if mode == "unavailable" or (mode == "index-unavailable" and path.startswith("/linux/debian/dists/")):
            self.send_error(503, "mirror switched off by the test")
            return
        file = self.owner.resolve(path)
        if file is None or not file.is_file():
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(file.stat().st_size))
        self.send_header("Last-Modified", self.date_time_string(int(file.stat().st_mtime)))
        self.end_headers()
        if body:
            with open(file, "rb") as f, contextlib.suppress(ConnectionError):
                shutil.copyfileobj(f, self.wfile)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass
