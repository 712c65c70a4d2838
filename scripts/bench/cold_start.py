"""Cold start: the wall time of whole `prism` commands in fresh processes, torch against ONNX.

Copies recipes/quickstart.yaml twice into a temporary folder (the same sources; `backend: torch`
and `backend: onnx` on the dense encoder, each its own store), ingests both once, then runs, in
turn and `--runs` times each, in a fresh process: `prism search RECIPE "QUERY"` and a no-op
`prism ingest RECIPE`; prints the median and max wall seconds of each and whether torch was
imported (`PRISMRAG_REPORT_MODULES` is not needed: the child prints `sys.modules` itself).

    HF_HUB_OFFLINE=1 .venv/bin/python scripts/bench/cold_start.py --runs 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRISM = [sys.executable, "-c",
         "import sys; from prismrag.cli import main; rc = main(sys.argv[1:]); "
         "print('torch imported' if 'torch' in sys.modules else 'no torch', file=sys.stderr); sys.exit(rc)"]


def recipe(folder: Path, backend: str) -> Path:
    text = (ROOT / "recipes" / "quickstart.yaml").read_text()
    text = text.replace("path: ../.prism/quickstart", f"path: {folder / ('index-' + backend)}")
    text = text.replace("path: ../docs", f"path: {ROOT / 'docs'}").replace("path: ..,", f"path: {ROOT},")
    text = text.replace("model: sentence-transformers/all-MiniLM-L6-v2", f"model: sentence-transformers/all-MiniLM-L6-v2, backend: {backend}")
    if f"backend: {backend}" not in text:
        raise SystemExit("recipes/quickstart.yaml changed: cannot set the backend")
    path = folder / f"quickstart-{backend}.yaml"
    path.write_text(text)
    return path


def timed(args: list[str]) -> tuple[float, str]:
    t = time.perf_counter()
    out = subprocess.run(PRISM + args, capture_output=True, text=True, timeout=600)
    wall = time.perf_counter() - t
    if out.returncode:
        raise SystemExit(f"prism {' '.join(args)} failed:\n{out.stderr[-2000:]}")
    return wall, out.stderr.strip().splitlines()[-1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--query", default="how do fusion weights work")
    parser.add_argument("--backends", default="torch,onnx")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory(prefix="prism-cold-") as tmp:
        recipes = {b: recipe(Path(tmp), b) for b in args.backends.split(",")}
        for path in recipes.values():
            timed(["ingest", str(path), "--quiet"])
        walls: dict[tuple[str, str], list[float]] = {}
        torch_seen: dict[tuple[str, str], str] = {}
        for _ in range(args.runs):
            for backend, path in recipes.items():
                for command in (["search", str(path), args.query, "--top-k", "3"], ["ingest", str(path), "--quiet"]):
                    wall, note = timed(command)
                    walls.setdefault((backend, command[0]), []).append(wall)
                    torch_seen[(backend, command[0])] = note
    for (backend, command), values in walls.items():
        print(f"{backend:>6} prism {command:<6}: median {statistics.median(values):.2f} s, max {max(values):.2f} s "
              f"({len(values)} fresh processes; {torch_seen[(backend, command)]})")
    print(f"load average {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
