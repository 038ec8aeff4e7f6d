"""A versioned, integrity-checked model registry on the filesystem.

Layout under the store root (default: this package's `store/` folder, or $GVAE_STORE_ROOT):

    <root>/<name>/versions/<n>/metadata.json          name, version, configs, metrics, sha256 of every file
    <root>/<name>/versions/<n>/weights.safetensors    model weights (never pickle)
    <root>/<name>/versions/<n>/...                    optimizer state, training record (record/...)
    <root>/<name>/aliases.json                        {"production": 3, ...}; `latest` is implicit

Versions are immutable integers 1, 2, 3 ... A version is written into a hidden temporary folder,
fsynced and renamed into place under a lock (register-or-rollback): a crash at any point leaves no
partial version visible and moves no alias; concurrent saves get distinct numbers.

    store = ModelStore()
    with store.register("gvae") as draft:
        draft.save_weights(model)
        draft.metadata.update(model_config=model.config.to_dict(), metrics={...})
    print(draft.version)
    model, metadata = store.load_model("gvae", "latest")
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from .errors import AliasInUse, IntegrityError, InvalidName, ModelNotFound, StoreError
from .model import GumbelVAE, VAEConfig

log = logging.getLogger(__name__)

DEFAULT_ROOT = Path(__file__).resolve().parent / "store"
ROOT_ENV_VAR = "GVAE_STORE_ROOT"
DEFAULT_MODEL_NAME = "gvae"
LATEST = "latest"
WEIGHTS_FILE = "weights.safetensors"
METADATA_FILE = "metadata.json"
_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")


def default_root() -> Path:
    return Path(os.environ.get(ROOT_ENV_VAR) or DEFAULT_ROOT)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with tmp.open("w") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_path(path.parent)


def _check_name(kind: str, value: str) -> str:
    if not isinstance(value, str) or not _NAME_RE.match(value):
        raise InvalidName(f"invalid {kind} {value!r}: use a letter followed by up to 63 letters, digits, "
                          "'_', '.' or '-'")
    return value


@dataclass
class VersionDraft:
    """A version being built in a temporary folder; becomes visible only when `register` commits it."""

    name: str
    path: Path
    metadata: dict[str, Any] = field(default_factory=dict)
    version: int | None = None  # set on commit

    def save_weights(self, model: GumbelVAE) -> None:
        state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(self.path / WEIGHTS_FILE), metadata={"format": "pt"})
        self.metadata["model_config"] = model.config.to_dict()

    def save_tensors(self, relpath: str, tensors: dict[str, torch.Tensor]) -> None:
        target = self.file(relpath)
        save_file({k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}, str(target))

    def save_json(self, relpath: str, data: Any) -> None:
        self.file(relpath).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")

    def file(self, relpath: str) -> Path:
        """A path inside the draft for an extra file (parent folders are created)."""
        target = (self.path / relpath).resolve()
        if self.path.resolve() not in target.parents:
            raise StoreError(f"file {relpath!r} would lie outside the version folder")
        target.parent.mkdir(parents=True, exist_ok=True)
        return target


class ModelStore:
    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root) if root is not None else default_root()

    # ----------------------------------------------------------------------------------- reading
    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / "versions").is_dir() and _NAME_RE.match(p.name))

    def versions(self, name: str) -> list[int]:
        vdir = self._model_dir(name) / "versions"
        if not vdir.is_dir():
            return []
        return sorted(int(p.name) for p in vdir.iterdir() if p.name.isdigit() and p.is_dir())

    def aliases(self, name: str) -> dict[str, int]:
        path = self._model_dir(name) / "aliases.json"
        aliases = json.loads(path.read_text()) if path.exists() else {}
        versions = self.versions(name)
        if versions:
            aliases[LATEST] = versions[-1]
        return aliases

    def resolve(self, name: str, ref: int | str = LATEST) -> int:
        """A version number from a number, a numeric string or an alias (`latest` included)."""
        versions = self.versions(name)
        if not versions:
            raise ModelNotFound(f"no versions of model {name!r} in store {self.root}; "
                                f"train one with `python -m training` or point {ROOT_ENV_VAR} at another store")
        if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
            version = int(ref)
            if version not in versions:
                raise ModelNotFound(f"model {name!r} has no version {version}; available: {versions}")
            return version
        aliases = self.aliases(name)
        if ref not in aliases:
            raise ModelNotFound(f"model {name!r} has no alias {ref!r}; aliases: {sorted(aliases)}")
        return aliases[ref]

    def version_dir(self, name: str, ref: int | str = LATEST) -> Path:
        return self._model_dir(name) / "versions" / str(self.resolve(name, ref))

    def metadata(self, name: str, ref: int | str = LATEST) -> dict[str, Any]:
        path = self.version_dir(name, ref) / METADATA_FILE
        try:
            return json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise IntegrityError(f"cannot read {path}: {exc}; the version is damaged, delete it "
                                 f"(`python -m model_store delete`) or restore it from a backup") from exc

    def verify(self, name: str, ref: int | str = LATEST) -> dict[str, Any]:
        """Checks every file's sha256 against the metadata; returns the metadata or raises IntegrityError."""
        vdir = self.version_dir(name, ref)
        meta = self.metadata(name, ref)
        files: dict[str, str] = meta.get("files") or {}
        if WEIGHTS_FILE not in files:
            raise IntegrityError(f"{vdir / METADATA_FILE} lists no {WEIGHTS_FILE}; the version is damaged, delete it")
        for relpath, expected in sorted(files.items()):
            path = vdir / relpath
            if not path.is_file():
                raise IntegrityError(f"{path} is missing; the version is incomplete: restore the file or delete "
                                     f"version {meta.get('version')} (`python -m model_store delete`)")
            actual = sha256_of(path)
            if actual != expected:
                raise IntegrityError(f"{path} has sha256 {actual[:16]}..., expected {expected[:16]}...: the file was "
                                     f"modified or corrupted; restore it or delete version {meta.get('version')}")
        return meta

    def load_tensors(self, name: str, ref: int | str, relpath: str) -> dict[str, torch.Tensor]:
        return load_file(str(self.version_dir(name, ref) / relpath))

    def load_model(self, name: str = DEFAULT_MODEL_NAME, ref: int | str = LATEST, *,
                   device: torch.device | str = "cpu", verify: bool = True) -> tuple[GumbelVAE, dict[str, Any]]:
        """Rebuilds the model from its saved config and loads the verified weights (safetensors only)."""
        meta = self.verify(name, ref) if verify else self.metadata(name, ref)
        model = GumbelVAE(VAEConfig.from_dict(meta["model_config"]))
        state = load_file(str(self.version_dir(name, meta["version"]) / WEIGHTS_FILE))
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise IntegrityError(f"weights of {name} v{meta['version']} do not match its model_config: {exc}") from exc
        model.to(device).eval()
        return model, meta

    # ----------------------------------------------------------------------------------- writing
    @contextlib.contextmanager
    def register(self, name: str) -> Iterator[VersionDraft]:
        """Builds a version in a temporary folder and commits it on success; on any error, removes it."""
        _check_name("model name", name)
        model_dir = self._model_dir(name)
        (model_dir / "versions").mkdir(parents=True, exist_ok=True)
        self._remove_stale_drafts(model_dir)
        tmp = model_dir / f".draft-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        draft = VersionDraft(name=name, path=tmp)
        try:
            yield draft
            self._commit(draft)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def _commit(self, draft: VersionDraft) -> None:
        if not (draft.path / WEIGHTS_FILE).is_file():
            raise StoreError("a version needs weights: call draft.save_weights(model) before committing")
        files = {}
        for path in sorted(p for p in draft.path.rglob("*") if p.is_file()):
            rel = path.relative_to(draft.path).as_posix()
            if rel != METADATA_FILE:
                files[rel] = sha256_of(path)
                _fsync_path(path)
        model_dir = draft.path.parent
        with self._lock(draft.name):
            version = max([*self.versions(draft.name), self._last_version(model_dir)]) + 1
            meta = dict(draft.metadata)
            meta.update(name=draft.name, version=version, files=files,
                        created_at=datetime.now(UTC).isoformat(timespec="seconds"))
            meta_path = draft.path / METADATA_FILE
            meta_path.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
            _fsync_path(meta_path)
            for d in sorted({p.parent for p in draft.path.rglob("*")} | {draft.path}, reverse=True):
                _fsync_path(d)
            os.rename(draft.path, model_dir / "versions" / str(version))
            _fsync_path(model_dir / "versions")
            (model_dir / "last_version").write_text(f"{version}\n")
        draft.version = version
        draft.metadata = meta
        log.info("registered %s version %d in %s", draft.name, version, self.root)

    def set_alias(self, name: str, alias: str, ref: int | str) -> int:
        _check_name("alias", alias)
        if alias == LATEST:
            raise InvalidName("'latest' always points to the newest version and cannot be set")
        version = self.resolve(name, ref)
        with self._lock(name):
            aliases = self._stored_aliases(name)
            aliases[alias] = version
            _write_json_atomic(self._model_dir(name) / "aliases.json", aliases)
        return version

    def remove_alias(self, name: str, alias: str) -> None:
        with self._lock(name):
            aliases = self._stored_aliases(name)
            if alias not in aliases:
                raise ModelNotFound(f"model {name!r} has no alias {alias!r} to remove; aliases: {sorted(aliases)}")
            del aliases[alias]
            _write_json_atomic(self._model_dir(name) / "aliases.json", aliases)

    def delete(self, name: str, ref: int | str, *, force: bool = False) -> int:
        """Removes a version; refused while an alias (other than `latest`) points to it unless `force`."""
        version = self.resolve(name, ref)
        with self._lock(name):
            aliases = self._stored_aliases(name)
            pointing = sorted(a for a, v in aliases.items() if v == version)
            if pointing and not force:
                raise AliasInUse(f"version {version} of {name!r} is pointed to by {pointing}; move or remove "
                                 f"the alias first, or pass --force to delete it and those aliases")
            if pointing:
                _write_json_atomic(self._model_dir(name) / "aliases.json",
                                   {a: v for a, v in aliases.items() if v != version})
            trash = self._model_dir(name) / f".trash-{version}-{uuid.uuid4().hex[:8]}"
            os.rename(self._model_dir(name) / "versions" / str(version), trash)
            _fsync_path(self._model_dir(name) / "versions")
        shutil.rmtree(trash, ignore_errors=True)
        return version

    # ----------------------------------------------------------------------------------- helpers
    def _model_dir(self, name: str) -> Path:
        return self.root / _check_name("model name", name)

    def _stored_aliases(self, name: str) -> dict[str, int]:
        path = self._model_dir(name) / "aliases.json"
        return json.loads(path.read_text()) if path.exists() else {}

    @staticmethod
    def _last_version(model_dir: Path) -> int:
        path = model_dir / "last_version"
        try:
            return int(path.read_text().strip())
        except (OSError, ValueError):
            return 0

    @contextlib.contextmanager
    def _lock(self, name: str) -> Iterator[None]:
        model_dir = self._model_dir(name)
        model_dir.mkdir(parents=True, exist_ok=True)
        with (model_dir / ".lock").open("a") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    @staticmethod
    def _remove_stale_drafts(model_dir: Path) -> None:
        """Drafts and trash left by a process that died (kill -9) are invisible; clean them up."""
        for p in model_dir.glob(".draft-*"):
            pid = p.name.split("-")[1]
            if pid.isdigit() and not _pid_alive(int(pid)):
                shutil.rmtree(p, ignore_errors=True)
        for p in model_dir.glob(".trash-*"):
            shutil.rmtree(p, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
