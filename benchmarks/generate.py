"""Write the seeded national benchmark instances as problem folders.

    python -m benchmarks.generate                       # national-1k ... national-30k
    python -m benchmarks.generate --sizes 1k,2k --scores
    python -m benchmarks.generate --names small,demo     # any name in allocator.demo.NAMED

Each instance is ``allocator.demo.NAMED[name]`` (357 real municipalities, seeded) written with
``allocator.demo.write_instance`` into ``benchmarks/instances/<name>/`` (git-ignored). A folder
whose ``instance.json`` records the same spec and generator (a digest of ``allocator/demo.py`` and
its bundled municipalities) is kept as it is; otherwise, or with ``--force``, it is rewritten.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import sys
import time
from pathlib import Path

SIZES = ("1k", "2k", "5k", "10k", "30k")
DEFAULT_DIR = Path(__file__).resolve().parent / "instances"
MARKER = "instance.json"


def instance_names(sizes: list[str] | tuple[str, ...], scores: bool = False) -> list[str]:
    """``national-<size>`` names, or ``national-<size>-scores`` with ``scores``."""
    bad = [s for s in sizes if s not in SIZES]
    if bad:
        raise ValueError(f"unknown size(s) {', '.join(bad)}; choose from {', '.join(SIZES)}")
    return [f"national-{s}" + ("-scores" if scores else "") for s in sizes]


def named(text: str) -> list[str]:
    """Comma-separated names of ``allocator.demo.NAMED``; ValueError naming any unknown."""
    from allocator.demo import NAMED

    names = text.split(",")
    unknown = [n for n in names if n not in NAMED]
    if unknown:
        raise ValueError(f"unknown round(s) {', '.join(unknown)}; known: {', '.join(NAMED)}")
    return names


def generator_digest() -> str:
    """SHA-256 of the generator's source and reference data: instances follow both."""
    from importlib import resources

    from allocator import demo

    sha = hashlib.sha256(Path(demo.__file__).read_bytes())
    sha.update(resources.files("allocator.data").joinpath("municipalities_no_2025.csv").read_bytes())
    return sha.hexdigest()


def ensure_instance(name: str, directory: Path = DEFAULT_DIR, force: bool = False) -> Path:
    """The folder of instance ``name``, written first if missing or made from another spec."""
    from allocator.demo import NAMED, write_instance

    if name not in NAMED:
        raise ValueError(f"unknown instance {name!r}; known: {', '.join(NAMED)}")
    spec = NAMED[name]
    folder = directory / name
    marker = folder / MARKER
    record = {"name": name, "spec": dataclasses.asdict(spec), "generator": generator_digest()}
    if not force and marker.exists():
        try:
            old = json.loads(marker.read_text())
            if old["spec"] == record["spec"] and old.get("generator") == record["generator"]:
                return folder
        except (ValueError, KeyError):
            pass
    write_instance(spec, folder)
    marker.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.generate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default=",".join(SIZES), help="comma-separated, from " + ",".join(SIZES))
    parser.add_argument("--scores", action="store_true", help="the -scores variants (supplied scores.csv)")
    parser.add_argument("--both", action="store_true", help="with and without scores")
    parser.add_argument("--names", default="", help="instance names from allocator.demo.NAMED instead of sizes")
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="where to write (default benchmarks/instances)")
    parser.add_argument("--force", action="store_true", help="rewrite existing folders")
    args = parser.parse_args(argv)

    if args.names:
        names = [n.strip() for n in args.names.split(",") if n.strip()]
    else:
        sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
        variants = [False, True] if args.both else [args.scores]
        names = [n for scores in variants for n in instance_names(sizes, scores)]
    for name in names:
        marker = args.dir / name / MARKER
        before = marker.stat().st_mtime_ns if marker.exists() else None
        started = time.perf_counter()
        folder = ensure_instance(name, args.dir, args.force)
        after = marker.stat().st_mtime_ns
        what = "kept" if before == after else f"written in {time.perf_counter() - started:.1f}s"
        print(f"{name}: {folder} ({what})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
