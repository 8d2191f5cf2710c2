"""What a folder of class folders holds, read once per process: torchvision's ImageFolder layout
and order (``find_classes``: the sorted folder names; files in sorted ``os.walk`` order, by
``IMG_EXTENSIONS``, plus GIF), each image's header, and what the data config can infer from them
(``conf/data/folder.yaml``: channels, size, classes).

Bad data costs one ``cnnlab: warning:`` line naming the file or folder and is left out (a
non-image file, an unreadable header, a decompression bomb, an empty class folder, a symlink
loop, a test class unknown to ``root``); what leaves nothing to train on is one
``cnnlab: error:`` line (a root that is missing, a file, empty, or holds one class).
"""

from __future__ import annotations

import functools
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from torchvision.datasets.folder import IMG_EXTENSIONS

from cnnlab.data.cache import cache_path, cached
from cnnlab.data.decode import Header, read_header
from cnnlab.data.digits import ImageFileError
from cnnlab.errors import CnnlabError, say

EXTENSIONS = (*IMG_EXTENSIONS, ".gif")  # ImageFolder's, and GIF (the formats)
SHOWN = 3  # lines of one kind of warning before "and N more"


@dataclass(frozen=True)
class Scanned:
    """One folder's images: paths, class indices, headers, in ImageFolder's order."""

    root: Path
    classes: list[str]
    paths: list[Path]
    labels: list[int]
    headers: list[Header]
    skipped: list[str]  # images left out: unreadable headers, decompression bombs


def warn_each(lines: list[str]) -> None:
    """One warning line each, the first few; then how many more there were."""
    for line in lines[:SHOWN]:
        say(line, "warning")
    if len(lines) > SHOWN:
        say(f"... and {len(lines) - SHOWN} more like it", "warning")


def class_folders(root: Path, key: str) -> list[str]:
    """``find_classes``' order: the sorted names of ``root``'s folders."""
    if not root.exists():
        raise CnnlabError(f"{key}={root}: no such folder")
    if not root.is_dir():
        raise CnnlabError(f"{key}={root}: a file, not a folder of class folders")
    classes = sorted(entry.name for entry in os.scandir(root) if entry.is_dir())
    if not classes:
        raise CnnlabError(f"{key}={root}: holds no class folders (one folder per class)")
    by_case = Counter(name.casefold() for name in classes)
    if twins := [name for name in classes if by_case[name.casefold()] > 1]:
        say(f"{key}={root}: class folders {', '.join(twins)} differ only in case; "
            "kept as different classes", "warning")  # fmt: skip
    return classes


def walk(folder: Path) -> tuple[list[Path], list[str]]:
    """``folder``'s files in ``sorted(os.walk(folder, followlinks=True))`` order, each real
    folder visited once: a symlink loop is one warning, not an endless walk."""
    seen: set[str] = set()
    found: list[tuple[str, list[str]]] = []
    problems: list[str] = []

    def visit(path: str) -> None:
        real = os.path.realpath(path)
        if real in seen:
            problems.append(f"{path}: a symlink loop (back to {real}); not followed")
            return
        seen.add(real)
        try:
            entries = sorted(os.scandir(path), key=lambda e: e.name)
        except OSError as e:
            problems.append(f"{path}: unreadable folder ({e.strerror}); left out")
            return
        found.append((path, [e.name for e in entries if not e.is_dir()]))
        for entry in entries:
            if entry.is_dir():
                visit(entry.path)

    visit(str(folder))
    files = [Path(d, name) for d, names in sorted(found) for name in sorted(names)]
    return files, problems


def scan_folder(root: Path, classes: list[str], data_dir: Path) -> Scanned:
    """Every image of ``root``'s class folders named in ``classes``, with its header."""
    files, labels, problems, ignored = [], [], [], []
    for index, name in enumerate(classes):
        if not (root / name).is_dir():  # a test folder without this class, as ImageFolder
            continue
        found, walk_problems = walk(root / name)
        problems += walk_problems
        for path in found:
            if path.suffix.lower() in EXTENSIONS:
                files.append(path)
                labels.append(index)
            else:
                ignored.append(f"{path}: not an image file (by its extension); ignored")
    read = headers_of(root, files, data_dir)
    good = [i for i, header in enumerate(read) if isinstance(header, Header)]
    skipped = [f"{header}; skipped" for header in read if isinstance(header, str)]
    present = {labels[i] for i in good}
    problems += [f"{root / name}: class folder holds no images; not a class"
                 for index, name in enumerate(classes)
                 if (root / name).is_dir() and index not in present]  # fmt: skip
    for lines in (ignored, skipped, problems):
        warn_each(lines)
    return Scanned(root, classes, [files[i] for i in good], [labels[i] for i in good],
                   [read[i] for i in good], skipped)  # fmt: skip


def headers_of(root: Path, files: list[Path], data_dir: Path) -> list[Header | str]:
    """Each file's header, or the line saying why it has none; cached (``cnnlab.data.cache``,
    keyed by the files' paths, sizes and mtimes), so a second run opens no image to learn
    what the folder holds."""

    def read() -> list[tuple[str, str, int, int] | str]:
        return [header_or_problem(path) for path in files]

    path = cache_path(data_dir, f"{root.name}-headers", files, "headers")
    read_once, _ = cached(path, read, "read", None)
    return [entry if isinstance(entry, str) else Header(*entry) for entry in read_once]


def header_or_problem(path: Path) -> tuple[str, str, int, int] | str:
    """The file's header as plain values (what a weights-only cache holds), or its problem."""
    try:
        header = read_header(path)
    except ImageFileError as e:
        return str(e)
    return (header.format, header.mode, header.width, header.height)


@functools.cache
def scan(root: str, test_root: str | None, data_dir: str) -> tuple[Scanned, Scanned | None]:
    """The training folder and the test folder, if any, scanned once per process (their
    headers cached under ``data_dir``)."""
    classes = class_folders(Path(root), "data.root")
    train = scan_folder(Path(root), classes, Path(data_dir))
    present = [train.classes[i] for i in sorted(set(train.labels))]  # empty folders left out
    if len(present) < len(train.classes):
        index = {train.classes[i]: new for new, i in enumerate(sorted(set(train.labels)))}
        labels = [index[train.classes[label]] for label in train.labels]
        train = Scanned(train.root, present, train.paths, labels, train.headers, train.skipped)
    if len(present) < 2:
        raise CnnlabError(
            f"data.root={root}: images of {len(present)} class ({', '.join(present) or 'none'});"
            " a classifier needs two or more class folders with images"
        )
    if test_root is None:
        return train, None
    test_classes = class_folders(Path(test_root), "data.test_root")
    if unknown := [name for name in test_classes if name not in present]:
        say(f"data.test_root={test_root}: classes {', '.join(unknown)} are not in "
            f"data.root={root}; their images left out", "warning")  # fmt: skip
    test = scan_folder(Path(test_root), present, Path(data_dir))
    return train, test


def inferred(root: str, test_root: str | None, data_dir: str) -> dict[str, object]:
    """What ``conf/data/folder.yaml`` reads from the images unless given: channels (3 if any
    image has colour), the most common size (its longer side: images are made square), the
    classes (the folder names)."""
    train, test = scan(str(root), None if test_root is None else str(test_root), str(data_dir))
    headers = train.headers + (test.headers if test else [])
    (width, height), _ = Counter((h.width, h.height) for h in headers).most_common(1)[0]
    return {
        "channels": 3 if any(h.colour for h in headers) else 1,
        "image_size": max(width, height),
        "num_classes": len(train.classes),
        "class_names": list(train.classes),
    }
