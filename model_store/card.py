"""A version's record as one self-contained HTML model card (no scripts, images inlined as data URIs).

    html = render_card(ModelStore(), "gvae", "latest")      # the service serves this at /v1/models/{version}/card
    python -m model_store card 3 -o card.html

Shows the description and tags, metrics, the loss curves and the last epoch's sample/reconstruction grids,
model/training/launch configuration, dataset and framework, lineage (parent versions) and every file's sha256.
Every piece of text from the metadata is HTML-escaped.
"""

from __future__ import annotations

import base64
import re
from html import escape
from typing import Any

from .compare import format_value
from .registry import ModelStore

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
LOSS_CURVE = "record/loss_curve.png"
TENSORBOARD_PREFIX = "record/tensorboard/"
_GRID_RE = re.compile(r"^record/grids/epoch_(\d+)_(samples|reconstruction)\.png$")

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
h1 { margin-bottom: .2rem; } h2 { margin-top: 2rem; border-bottom: 1px solid #ddd; }
.sub { color: #666; } table { border-collapse: collapse; margin: .5rem 0; }
td, th { border: 1px solid #ddd; padding: .2rem .6rem; text-align: left; vertical-align: top; }
th { background: #f5f5f5; } code { font-size: .85em; } img { max-width: 100%; image-rendering: pixelated; }
figure { display: inline-block; margin: 0 1rem 1rem 0; vertical-align: top; } img.grid { width: 22rem; }
figcaption { color: #666; font-size: .9em; }
"""


def render_card(store: ModelStore, name: str, ref: int | str = "latest", *, verify: bool = True) -> str:
    """The HTML model card of one version; with `verify` its files are checked against their sha256 first
    (raises IntegrityError / ModelNotFound like the rest of the store)."""
    meta = store.verify(name, ref) if verify else store.metadata(name, ref)
    version = meta["version"]
    files: dict[str, str] = meta.get("files") or {}
    aliases = sorted(a for a, v in store.aliases(name).items() if v == version)
    title = f"{name} v{version}"
    parts = [f"<h1>{escape(title)}</h1>",
             f'<p class="sub">created {escape(str(meta.get("created_at", "-")))} · aliases: '
             f'{escape(", ".join(aliases) or "none")} · git {escape(str(meta.get("git_commit") or "-"))}'
             f'{" · files verified" if verify else ""}</p>']
    if meta.get("description"):
        parts.append(f"<p>{escape(str(meta['description']))}</p>")
    parts += ["<h2>Tags</h2>", _table(meta.get("tags") or {}, empty="no tags")]
    parts += ["<h2>Metrics</h2>", _table(meta.get("metrics") or {}, empty="no metrics recorded")]

    images = _images(store, name, version, files)
    if images:
        parts.append("<h2>Training record</h2>")
        parts += [_figure(uri, caption, grid=caption != "loss curves") for caption, uri in images]

    parts.append("<h2>Configuration</h2>")
    for heading, key in (("Model", "model_config"), ("Training", "training_config"), ("Launch", "launch"),
                         ("Dataset", "dataset"), ("Framework", "framework")):
        if meta.get(key):
            parts += [f"<h3>{heading}</h3>", _table(meta[key])]
    parts += ["<h2>Lineage</h2>", f"<p>{escape(_lineage(store, name, meta))}</p>"]
    if any(path.startswith(TENSORBOARD_PREFIX) for path in files):
        logdir = f"{name}/versions/{version}/{TENSORBOARD_PREFIX.rstrip('/')}"
        parts.append(f"<p>TensorBoard events are in <code>{escape(logdir)}</code> under the store root; "
                     "<code>tensorboard --logdir STORE_ROOT</code> compares every version.</p>")
    parts += ["<h2>Files</h2>", _table(dict(sorted(files.items())), head=("file", "sha256"), code=True)]
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{escape(title)} · model card</title><style>{_STYLE}</style></head>\n<body>\n"
            + "\n".join(parts) + "\n</body></html>\n")


def _table(data: dict[str, Any], *, head: tuple[str, str] = ("", ""), empty: str = "none", code: bool = False) -> str:
    if not data:
        return f'<p class="sub">{escape(empty)}</p>'
    wrap = (lambda s: f"<code>{s}</code>") if code else (lambda s: s)
    header = f"<tr><th>{escape(head[0])}</th><th>{escape(head[1])}</th></tr>" if any(head) else ""
    body = "".join(f"<tr><th>{escape(str(k))}</th><td>{wrap(escape(format_value(v)))}</td></tr>"
                   for k, v in data.items())
    return f"<table>{header}{body}</table>"


def _figure(data_uri: str, caption: str, *, grid: bool) -> str:
    css = ' class="grid"' if grid else ""
    return (f'<figure><img{css} src="{data_uri}" alt="{escape(caption)}">'
            f"<figcaption>{escape(caption)}</figcaption></figure>")


def _images(store: ModelStore, name: str, version: int, files: dict[str, str]) -> list[tuple[str, str]]:
    """(caption, data URI) of the loss curve and the last epoch's grids, read from files the version lists."""
    wanted: list[tuple[str, str]] = []
    if LOSS_CURVE in files:
        wanted.append(("loss curves", LOSS_CURVE))
    grids = [(int(m.group(1)), m.group(2), path) for path in files if (m := _GRID_RE.match(path))]
    if grids:
        last = max(epoch for epoch, _, _ in grids)
        wanted += [(f"{kind}, epoch {epoch}", path) for epoch, kind, path in sorted(grids) if epoch == last]
    vdir = store.version_dir(name, version)
    out = []
    for caption, relpath in wanted:
        data = (vdir / relpath).read_bytes()
        if data.startswith(PNG_SIGNATURE):
            out.append((caption, "data:image/png;base64," + base64.b64encode(data).decode("ascii")))
    return out


def _lineage(store: ModelStore, name: str, meta: dict[str, Any]) -> str:
    """'v5 ← v3 ← v1' following parent_version (resumed runs), marking parents that were deleted."""
    chain, seen, parent = [f"v{meta['version']}"], {meta["version"]}, meta.get("parent_version")
    existing = set(store.versions(name))
    while parent is not None and parent not in seen:
        seen.add(parent)
        if parent not in existing:
            chain.append(f"v{parent} (deleted)")
            break
        chain.append(f"v{parent}")
        parent = store.metadata(name, parent).get("parent_version")
    return " ← ".join(chain) + ("" if len(chain) > 1 else " (trained from scratch)")
