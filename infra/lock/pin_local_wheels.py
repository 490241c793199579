"""Give the lock's locally found wheels (``--find-links``) their sha256, which ``uv pip compile`` leaves out.

``uv pip compile --generate-hashes`` hashes what an index serves but writes a
wheel it found in a ``--find-links`` folder (here PyTorch's CPU build, which
PyPI does not serve) without a hash, and ``--require-hashes`` then refuses the
whole install. This adds ``--hash=sha256:...`` of the wheel file to that line.

    python infra/lock/pin_local_wheels.py requirements.lock /opt/wheels
"""

from __future__ import annotations

import hashlib
import re
import sys
from pathlib import Path


def pin(lock: Path, wheels: Path) -> list[str]:
    """Rewrite ``lock`` in place; returns the requirements that got a hash."""
    lines = lock.read_text().splitlines()
    pinned: list[str] = []
    out: list[str] = []
    for line in lines:
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)==(\S+)", line.strip())
        if match and not line.startswith(" "):
            name, version = match.groups()
            stem = f"{name.replace('-', '_')}-{version}-"
            found = sorted(p for p in wheels.glob("*.whl") if p.name.lower().startswith(stem.lower()))
            if not found:
                raise SystemExit(f"{line}: no hash in the lock and no wheel {stem}*.whl in {wheels}")
            digest = hashlib.sha256(found[0].read_bytes()).hexdigest()
            out += [f"{line} \\", f"    --hash=sha256:{digest}"]
            pinned.append(line)
            continue
        out.append(line)
    lock.write_text("\n".join(out) + "\n")
    return pinned


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    print("pinned:", ", ".join(pin(Path(sys.argv[1]), Path(sys.argv[2]))) or "nothing")
