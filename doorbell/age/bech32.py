"""Bech32 (BIP 173) as age uses it: no length limit, one case per string.

The checksum is computed over the lowercase form; uppercase strings (age secret keys) are
accepted and produced, mixed case never.
"""

from __future__ import annotations

from doorbell.age.errors import KeyFormatError

CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_CHARSET_INDEX = {c: i for i, c in enumerate(CHARSET)}
_GENERATOR = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)


def _polymod(values: list[int]) -> int:
    checksum = 1
    for value in values:
        top = checksum >> 25
        checksum = (checksum & 0x1FFFFFF) << 5 ^ value
        for i in range(5):
            if (top >> i) & 1:
                checksum ^= _GENERATOR[i]
    return checksum


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def _convert_bits(data: bytes | list[int], from_bits: int, to_bits: int, pad: bool) -> list[int]:
    accumulator = 0
    bits = 0
    out = []
    max_value = (1 << to_bits) - 1
    for value in data:
        accumulator = (accumulator << from_bits) | value
        bits += from_bits
        while bits >= to_bits:
            bits -= to_bits
            out.append((accumulator >> bits) & max_value)
    if pad:
        if bits:
            out.append((accumulator << (to_bits - bits)) & max_value)
    elif bits >= from_bits or (accumulator << (to_bits - bits)) & max_value:
        raise KeyFormatError("invalid Bech32 padding")
    return out


def encode(hrp: str, data: bytes, *, upper: bool = False) -> str:
    """Bech32-encode ``data`` under the human-readable part ``hrp`` (given in any case)."""
    hrp = hrp.lower()
    values = _convert_bits(data, 8, 5, pad=True)
    checksum = _polymod([*_hrp_expand(hrp), *values, 0, 0, 0, 0, 0, 0]) ^ 1
    values += [(checksum >> 5 * (5 - i)) & 31 for i in range(6)]
    text = hrp + "1" + "".join(CHARSET[v] for v in values)
    return text.upper() if upper else text


def decode(text: str) -> tuple[str, bytes]:
    """Decode a Bech32 string into ``(hrp in lowercase, data)``.

    Raises :class:`KeyFormatError` for mixed case, bad characters or a bad checksum.
    """
    if text.lower() != text and text.upper() != text:
        raise KeyFormatError("mixed-case Bech32 string")
    if any(ord(c) < 33 or ord(c) > 126 for c in text):
        raise KeyFormatError("Bech32 string contains a character outside printable ASCII")
    lowered = text.lower()
    separator = lowered.rfind("1")
    if separator < 1 or separator + 7 > len(lowered):
        raise KeyFormatError("Bech32 string has no separator or is too short")
    hrp, payload = lowered[:separator], lowered[separator + 1 :]
    try:
        values = [_CHARSET_INDEX[c] for c in payload]
    except KeyError as exc:
        raise KeyFormatError(f"invalid Bech32 character {exc.args[0]!r}") from None
    if _polymod([*_hrp_expand(hrp), *values]) != 1:
        raise KeyFormatError("Bech32 checksum does not match (a typo in the key?)")
    return hrp, bytes(_convert_bits(values[:-6], 5, 8, pad=False))
