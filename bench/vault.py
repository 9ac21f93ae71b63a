"""Vault throughput: our age vs raw ChaCha20-Poly1305 (same 64 KiB chunking) vs pyrage.

Measured in one run, in memory (no disk in the timed loops):

* encrypt and decrypt MB/s of ``--size-mb`` of data through ``doorbell.age`` (X25519),
  through a bare loop of ``cryptography`` ChaCha20-Poly1305 over the same 64 KiB chunks
  (the floor: same primitive, no format), and through pyrage (rage, Rust);
* time to read 64 KiB at 0 % and at 90 % of an encrypted file on disk (``--seek-file-mb``,
  200 MB by default, streamed to a temporary file: the seek cost);
* peak RSS of a fresh process that streams a file of 1/8 of the size and of the full size
  through encrypt and decrypt (flat in file size = bounded memory).

Targets: encrypt and decrypt >= 0.9x raw AEAD and >= 1.5x pyrage; seek at 90 % within 1.5x of
seek at 0 %; RSS flat. Table on stdout, JSON in bench/results/vault.json.

    .venv/bin/python bench/vault.py              # 64 MB, about a minute
    .venv/bin/python bench/vault.py --size-mb 256
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from doorbell.age.decrypt import decrypt
from doorbell.age.encrypt import encrypt
from doorbell.age.identities import X25519Identity
from doorbell.age.stream import CHUNK_SIZE, ENCRYPTED_CHUNK_SIZE, chunk_nonce

RESULTS = Path(__file__).resolve().parent / "results"
MB = 1_000_000


class NullSink:
    """Counts bytes; keeps nothing (so only the encryption is timed)."""

    def __init__(self) -> None:
        self.size = 0

    def write(self, data: bytes) -> int:
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        pass


def best_of(runs: int, contenders: dict) -> dict[str, float]:
    """Best time of each contender over ``runs`` rounds, taken in turn (round-robin), so that
    load from other processes hits all of them alike."""
    best = {name: float("inf") for name in contenders}
    for _ in range(runs):
        for name, function in contenders.items():
            started = time.perf_counter()
            function()
            best[name] = min(best[name], time.perf_counter() - started)
    return best


def raw_encrypt(data: memoryview, key: bytes) -> None:
    """The floor: one AEAD object, 64 KiB chunks, nonces as age builds them, same sink."""
    aead = ChaCha20Poly1305(key)
    sink = NullSink()
    last = max(0, (len(data) - 1) // CHUNK_SIZE)
    for index in range(last + 1):
        chunk = data[index * CHUNK_SIZE : (index + 1) * CHUNK_SIZE]
        sink.write(aead.encrypt(chunk_nonce(index, index == last), chunk, None))


def raw_decrypt_in_memory(payload: memoryview, key: bytes) -> None:
    """AEAD only, over slices of a buffer already in memory (no reads at all)."""
    aead = ChaCha20Poly1305(key)
    last = max(0, (len(payload) - 1) // ENCRYPTED_CHUNK_SIZE)
    for index in range(last + 1):
        chunk = payload[index * ENCRYPTED_CHUNK_SIZE : (index + 1) * ENCRYPTED_CHUNK_SIZE]
        aead.decrypt(chunk_nonce(index, index == last), chunk, None)


def raw_decrypt(payload: bytes, key: bytes) -> None:
    """The floor for a stream: read each chunk from a file object into one buffer, open it.

    The same I/O as any streaming reader (ours included) must do, without the age format.
    """
    aead = ChaCha20Poly1305(key)
    source = io.BytesIO(payload)
    buffer = bytearray(ENCRYPTED_CHUNK_SIZE)
    view = memoryview(buffer)
    last = max(0, (len(payload) - 1) // ENCRYPTED_CHUNK_SIZE)
    for index in range(last + 1):
        got = source.readinto(buffer)
        aead.decrypt(chunk_nonce(index, index == last), view[:got], None)


def raw_payload(data: memoryview, key: bytes) -> bytes:
    aead = ChaCha20Poly1305(key)
    last = max(0, (len(data) - 1) // CHUNK_SIZE)
    return b"".join(
        aead.encrypt(chunk_nonce(i, i == last), data[i * CHUNK_SIZE : (i + 1) * CHUNK_SIZE], None)
        for i in range(last + 1)
    )


def ours_encrypt(data: memoryview, identity: X25519Identity) -> None:
    with encrypt(NullSink(), [identity.recipient]) as writer:
        for start in range(0, len(data), CHUNK_SIZE):
            writer.write(data[start : start + CHUNK_SIZE])


def ours_decrypt(ciphertext: bytes, identity: X25519Identity) -> None:
    reader = decrypt(io.BytesIO(ciphertext), [identity])
    while reader.read(CHUNK_SIZE):
        pass


def seek_times(path: Path, identity: X25519Identity, size: int, repeats: int = 30) -> dict:
    figures = {}
    with path.open("rb") as handle:
        reader = decrypt(handle, [identity])
        for label, fraction in (("0%", 0.0), ("90%", 0.9)):
            samples = []
            for i in range(repeats):
                offset = int(size * fraction) // CHUNK_SIZE * CHUNK_SIZE + (i % 2) * CHUNK_SIZE
                reader.seek(0 if fraction == 0 and i % 2 == 0 else offset)
                started = time.perf_counter()
                reader.read(CHUNK_SIZE)
                samples.append(time.perf_counter() - started)
            figures[label] = statistics.median(samples)
    return figures


def streaming_rss(size: int) -> int:
    """Peak RSS (KiB, VmHWM) of a fresh process streaming ``size`` bytes through encrypt and
    decrypt via a temporary file (ciphertext only on disk)."""
    code = f"""
import os, tempfile
from doorbell.age.decrypt import decrypt
from doorbell.age.encrypt import encrypt
from doorbell.age.identities import X25519Identity
identity = X25519Identity.generate()
block = os.urandom(65536)
with tempfile.TemporaryFile() as f:
    with encrypt(f, [identity.recipient]) as w:
        for _ in range({size} // 65536):
            w.write(block)
    f.seek(0)
    r = decrypt(f, [identity])
    while r.read(65536):
        pass
status = open("/proc/self/status").read()
print(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM")))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


def seek_file_times(size: int) -> dict:
    """:func:`seek_times` over a ``size``-byte file encrypted straight to a temporary file."""
    identity = X25519Identity.generate()
    block = os.urandom(CHUNK_SIZE)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "file.age"
        with path.open("wb") as handle, encrypt(handle, [identity.recipient]) as writer:
            for _ in range(size // CHUNK_SIZE):
                writer.write(block)
            writer.write(block[: size % CHUNK_SIZE])
        return seek_times(path, identity, size)


def measure_throughput(size: int, runs: int) -> dict:
    import pyrage

    data = memoryview(os.urandom(size))
    identity = X25519Identity.generate()
    key = os.urandom(32)
    payload = raw_payload(data, key)
    sink = io.BytesIO()
    with encrypt(sink, [identity.recipient]) as writer:
        writer.write(data)
    ciphertext = sink.getvalue()
    their_identity = pyrage.x25519.Identity.generate()
    their_recipient = their_identity.to_public()
    plain_bytes = bytes(data)
    theirs = pyrage.encrypt(plain_bytes, [their_recipient])
    timings = {
        "encrypt": best_of(
            runs,
            {
                "ours": lambda: ours_encrypt(data, identity),
                "raw": lambda: raw_encrypt(data, key),
                "pyrage": lambda: pyrage.encrypt(plain_bytes, [their_recipient]),
            },
        ),
        "decrypt": best_of(
            runs,
            {
                "ours": lambda: ours_decrypt(ciphertext, identity),
                "raw": lambda: raw_decrypt(payload, key),
                "raw_in_memory": lambda: raw_decrypt_in_memory(memoryview(payload), key),
                "pyrage": lambda: pyrage.decrypt(theirs, [their_identity]),
            },
        ),
    }
    return {"timings": timings}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=64, help="data size (default 64)")
    parser.add_argument("--runs", type=int, default=7, help="best of N timed rounds")
    parser.add_argument("--seek-file-mb", type=int, default=200, help="seek test file size")
    args = parser.parse_args()
    size = args.size_mb * MB
    small, full = max(8 * MB, size // 8), size
    rss = {
        "small_mb": small // MB,
        "small_kib": streaming_rss(small),
        "full_mb": full // MB,
        "full_kib": streaming_rss(full),
    }
    measured = measure_throughput(size, args.runs)
    seeks = seek_file_times(args.seek_file_mb * MB)
    rates = {
        op: {k: size / MB / v for k, v in row.items()} for op, row in measured["timings"].items()
    }

    result = {
        "size_mb": args.size_mb,
        "mb_per_s": rates,
        "ratios": {
            op: {
                "vs_raw": rates[op]["ours"] / rates[op]["raw"],
                "vs_pyrage": rates[op]["ours"] / rates[op]["pyrage"],
            }
            for op in rates
        },
        "decrypt_vs_raw_in_memory": rates["decrypt"]["ours"] / rates["decrypt"]["raw_in_memory"],
        "seek_file_mb": args.seek_file_mb,
        "seek_read_64k_s": seeks,
        "seek_90_over_0": seeks["90%"] / seeks["0%"],
        "peak_rss_kib": rss,
        "rss_full_over_small": rss["full_kib"] / rss["small_kib"],
        "self_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }
    print(f"vault benchmark, {args.size_mb} MB, best of {args.runs}")
    print(f"{'':10}{'ours MB/s':>12}{'raw AEAD':>12}{'pyrage':>12}{'vs raw':>9}{'vs pyrage':>11}")
    for op in ("encrypt", "decrypt"):
        r, q = rates[op], result["ratios"][op]
        print(
            f"{op:10}{r['ours']:12.0f}{r['raw']:12.0f}{r['pyrage']:12.0f}"
            f"{q['vs_raw']:8.2f}x{q['vs_pyrage']:10.2f}x"
        )
    print(
        f"(decrypt vs AEAD over an in-memory buffer, no reads: "
        f"{result['decrypt_vs_raw_in_memory']:.2f}x)"
    )
    print(
        f"read 64 KiB after seek in a {args.seek_file_mb} MB file: "
        f"0% {seeks['0%'] * 1e6:.0f} us, 90% {seeks['90%'] * 1e6:.0f} us"
        f" ({result['seek_90_over_0']:.2f}x)"
    )
    print(
        f"peak RSS streaming {rss['small_mb']} MB: {rss['small_kib'] / 1024:.1f} MiB, "
        f"{rss['full_mb']} MB: {rss['full_kib'] / 1024:.1f} MiB "
        f"({result['rss_full_over_small']:.2f}x)"
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "vault.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
