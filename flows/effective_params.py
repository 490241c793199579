"""Write ``outputs/<profile>/params.json``: the effective params DVC tracks.

DVC can only track values it can read from a file, and ``params.yaml`` holds
base values plus profile overlays. A change to ``profiles.smoke.rl.max_steps``
must rerun RL on the smoke profile and nothing else, so the first DVC stage
(``params``) resolves base + profile into this file and every other stage lists
the keys it reads from it (``components.stages.STAGES``): DVC then compares values
per key, exactly as the Prefect cache key does.

    python -m flows.effective_params --profile smoke [--set key=value ...]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from components.config import ParamsError, load_params
from flows.cache_keys import write_effective_params


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    parser.add_argument("--profile", default=None, help="profile overlay (default: the file's 'profile:')")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    try:
        params = load_params(Path(args.params), args.profile, args.overrides)
    except ParamsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(write_effective_params(params))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
