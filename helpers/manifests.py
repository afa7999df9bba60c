"""Manifests of the real datasets and ``verify``: is a local copy of NIH ChestX-ray14 or DRIVE complete?

Each manifest (``helpers/data/manifests/<name>.json``, inside the package: a wheel carries it) lists the files,
counts and sizes of the public release. Command line: ``python -m helpers.manifests verify nih PATH`` (or
``drive``) checks a copy; ``--decode`` also decodes every image.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
import zlib
from pathlib import Path
from typing import Mapping, Sequence

from PIL import Image, UnidentifiedImageError

from helpers.datasets import _bbox_header_ok, _entry_columns, _listing, _png_size, _read_csv_rows, _read_list, safe_path
from helpers.errors import DataError

MANIFEST_DIR = Path(__file__).resolve().parent / "data" / "manifests"


def _load_manifest(name: str, manifest: str | Path | Mapping | None) -> Mapping:
    if isinstance(manifest, Mapping):
        return manifest
    path = Path(manifest) if manifest is not None else MANIFEST_DIR / f"{name}.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: manifest not found.") from None
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: manifest is not valid JSON ({err}).") from None


def _decode_one(path: Path) -> str | None:
    """None if Pillow decodes every pixel of ``path``, else the reason it cannot."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                img.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        return (
            f"decompression bomb: more pixels than Image.MAX_IMAGE_PIXELS ({Image.MAX_IMAGE_PIXELS:,}) allows ({err}); "
            "not decoded"
        )
    except FileNotFoundError:
        return "file not found"
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, zlib.error) as err:
        return f"cannot be decoded ({type(err).__name__}: {err})"
    return None


def _decode_all(paths: Sequence[Path], root: Path, progress: bool = True) -> tuple[str, list[str]]:
    """Decode every file (a tqdm bar on stderr); the summary line and one problem per failed file."""
    from tqdm import tqdm

    failed: list[str] = []
    for path in tqdm(paths, desc="decoding", unit="image", disable=not progress or len(paths) < 2, file=sys.stderr):
        reason = _decode_one(path)
        if reason is not None:
            failed.append(f"wrong: {path.relative_to(root) if path.is_relative_to(root) else path}: {reason}")
    summary = f"decoded: {len(paths) - len(failed):,} of {len(paths):,} image(s); {len(failed):,} failed"
    return summary, failed


def _check(
    name: str, root: str | Path, manifest: str | Path | Mapping | None = None, *, decode: bool = False
) -> tuple[list[str], list[str], list[str]]:
    """(present, problems, warnings) for a local copy of dataset ``name``."""
    if name not in ("nih", "drive"):
        raise ValueError(f"Unknown dataset {name!r}: choose 'nih' or 'drive'.")
    spec = _load_manifest(name, manifest)
    root = Path(root).expanduser().absolute()
    if not root.is_dir():
        return [], [f"missing: the folder {root} (expected layout in helpers/data/manifests/{name}.md)"], []
    return (_check_nih if name == "nih" else _check_drive)(spec, root, decode=decode)


def _check_nih(spec: Mapping, root: Path, *, decode: bool = False) -> tuple[list[str], list[str], list[str]]:
    present: list[str] = []
    problems: list[str] = []
    notes: list[str] = []
    layout = spec["layout"]
    missing: list[str] = []
    found: dict[str, Path] = {}
    for item in layout["files"]:
        options = [item["path"], *item.get("alternatives", [])]
        paths = [safe_path(root, option + gz) for option in options for gz in ("", ".gz")]
        hit = next((p for p in paths if p.is_file()), None)
        if hit is None:
            if item.get("required", True):
                missing.append(" or ".join(options))
            continue
        found[item["kind"]] = hit
        present.append(str(hit.relative_to(root)))
    if missing:
        problems.append(f"missing: {len(missing)} required file(s): {_listing(missing)}")
    counts = spec.get("counts", {})
    names: list[str] = []
    if "data_entry" in found:
        path = found["data_entry"]
        try:
            header, rows = _read_csv_rows(path)
            col = _entry_columns(header, path)["image_index"]
            names = [cells[col].strip() for _, cells in rows if len(cells) > col]
            if counts.get("images") and len(names) != counts["images"]:
                notes.append(f"{path.name} has {len(names):,} rows; the release has {counts['images']:,} (a subset, "
                             "or another copy)")
        except DataError as err:
            problems.append(f"wrong: {err}")
    if "bbox" in found:
        try:
            header, rows = _read_csv_rows(found["bbox"])
            _bbox_header_ok(header, found["bbox"])
            if counts.get("boxes") and len(rows) != counts["boxes"]:
                notes.append(f"{found['bbox'].name} has {len(rows):,} boxes; the release has {counts['boxes']:,}")
        except DataError as err:
            problems.append(f"wrong: {err}")
    for kind, count_key in (("train_val_list", "train_val_list"), ("test_list", "test_list")):
        if kind in found and counts.get(count_key):
            try:
                lines = _read_list(found[kind])
            except DataError as err:
                problems.append(f"wrong: {err}")
                continue
            if len(lines) != counts[count_key]:
                notes.append(f"{found[kind].name} lists {len(lines):,} images; the release lists {counts[count_key]:,}")
    images = layout["images"]
    image_dir = safe_path(root, images["dir"])
    if not image_dir.is_dir():
        problems.append(f"missing: the folder {images['dir']}/ (extract images_001.tar.gz .. images_012.tar.gz here)")
        return present, problems, notes
    on_disk = {e.name for e in os.scandir(image_dir) if e.name.lower().endswith(".png")}
    if names:
        absent = [n for n in names if n not in on_disk]
        have = len(names) - len(absent)
        present.append(f"{images['dir']}/: {have:,} of the {len(names):,} images named in the CSV")
        if have == 0:
            problems.append(f"missing: all {len(absent):,} images named in the CSV: {_listing(absent)}")
        elif absent:
            notes.append(
                f"partial copy: {len(absent):,} image(s) named in the CSV are not in {images['dir']}/ "
                f"({_listing(absent)}); read_nih(root, images='present') reads the rest"
            )
        extra = sorted(on_disk - set(names))
        if extra:
            notes.append(f"{len(extra):,} PNG(s) in {images['dir']}/ are not in the CSV ({_listing(extra)})")
    else:
        present.append(f"{images['dir']}/: {len(on_disk):,} PNG files")
    size = images.get("size")
    if size and on_disk:
        sample = sorted(on_disk)[:20]
        odd = []
        for n in sample:
            try:
                if list(_png_size(image_dir / n, check_end=False)) != list(size):
                    odd.append(n)
            except ValueError as err:
                problems.append(f"wrong: {images['dir']}/{n}: {err}")
        if odd:
            notes.append(f"{len(odd)} of the first {len(sample)} images are not {size[0]}x{size[1]} (synthetic or "
                         "resized data?)")
    if decode:
        summary, failed = _decode_all([image_dir / n for n in sorted(on_disk)], root)
        present.append(summary)
        problems.extend(failed)
    return present, problems, notes


def _check_drive(spec: Mapping, root: Path, *, decode: bool = False) -> tuple[list[str], list[str], list[str]]:
    present: list[str] = []
    problems: list[str] = []
    missing: list[str] = []
    wrong: list[str] = []
    files = spec["layout"]["files"]
    for item in files:
        path = safe_path(root, item["path"])
        if not path.is_file():
            missing.append(item["path"])
            continue
        if "width" in item:
            try:
                with Image.open(path) as img:
                    actual = img.size
            except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
                wrong.append(f"{item['path']} is not a readable image ({err})")
                continue
            if tuple(actual) != (item["width"], item["height"]):
                wrong.append(f"{item['path']} is {actual[0]}x{actual[1]}, expected {item['width']}x{item['height']}")
    present.append(f"{len(files) - len(missing)} of the {len(files)} DRIVE files")
    if missing:
        problems.append(f"missing: {len(missing)} file(s): {_listing(missing)}")
    problems.extend(f"wrong: {w}" for w in wrong)
    if decode:
        on_disk = [safe_path(root, item["path"]) for item in files]
        summary, failed = _decode_all([p for p in on_disk if p.is_file()], root)
        present.append(summary)
        problems.extend(failed)
    return present, problems, []


def verify(
    name: str, root: str | Path, *, manifest: str | Path | Mapping | None = None, decode: bool = False
) -> list[str]:
    """Check a local copy of ``nih`` or ``drive`` against helpers/data/manifests/<name>.json; returns the problems
    (empty: fine).

    With ``decode=True`` every image is also decoded with Pillow (a progress bar; slow on the full
    release): a PNG whose compressed data is corrupt behind an intact header and end marker, or a
    decompression bomb (more pixels than ``PIL.Image.MAX_IMAGE_PIXELS``), is a ``wrong:`` problem
    naming the file and the reason, and the summary (decoded, failed) is printed.

    Taught in 01_preprocessing_and_splits.
    """
    present, problems, notes = _check(name, root, manifest, decode=decode)
    for note in notes:
        warnings.warn(note, stacklevel=2)
    for line in present:
        if line.startswith("decoded:"):
            print(line)
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m helpers.manifests verify nih|drive [PATH]``; prints the findings, returns 0 or 1.

    Taught in 01_preprocessing_and_splits.
    """
    parser = argparse.ArgumentParser(prog="python -m helpers.manifests", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("verify", help="check a local copy against helpers/data/manifests/<name>.json")
    check.add_argument("name", choices=["nih", "drive"])
    check.add_argument("path", nargs="?", help="the dataset folder (default: MEDXAI_DATA_DIR/<name>)")
    check.add_argument(
        "--decode", action="store_true", help="also decode every image (slow): finds corrupt data behind a valid header"
    )
    args = parser.parse_args(argv)
    try:
        if args.path is None:
            from helpers import config

            root = config.load().dataset_dir(args.name)
        else:
            root = Path(args.path)
        present, problems, notes = _check(args.name, root, None, decode=args.decode)
    except (DataError, ValueError) as err:  # ConfigError is a ValueError
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"{args.name} at {Path(root).expanduser().absolute()} (against helpers/data/manifests/{args.name}.json)")
    for line in present:
        print(f"  {line}" if line.startswith("decoded:") else f"  present: {line}")
    for line in notes:
        print(f"  warning: {line}")
    for line in problems:
        print(f"  {line}")
    if problems:
        print("FAILED")
    elif args.decode:
        print("OK")
    else:  # the layout and headers hold; the pixel data was not read
        print("OK (layout, headers and counts; the images were not decoded: add --decode to find a PNG whose data is "
              "corrupt behind an intact header)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
