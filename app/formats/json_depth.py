"""How deeply a JSON document nests, measured on its bytes before anything decodes it.

msgspec (like every recursive decoder) raises ``RecursionError`` near a thousand levels, and a
document just under that depth makes whatever walks it next (an encoder, the SQL driver's JSON
serialiser) fail instead; a limit checked on the raw bytes keeps every later step safe. The check
is a handful of C-speed byte operations (translate, replace, split), no per-byte Python.
"""

from __future__ import annotations

#: Every byte but quotes and the four brackets, deleted by ``translate``.
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'"[]{}')
#: Objects and arrays nest alike: one bracket alphabet is enough to measure depth.
_ONE_KIND = bytes.maketrans(b"{}", b"[]")


def nesting_exceeds(body: bytes, limit: int) -> bool:
    """Whether ``body`` (JSON, or anything: malformed JSON fails its decoding later) nests arrays
    and objects more than ``limit`` levels deep. Brackets inside strings do not count."""
    if b"\\" in body:
        # Escaped backslashes first, then escaped quotes: every ``"`` left delimits a string.
        body = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    # The skeleton: quotes and brackets only. Removing adjacent quotes drops an empty string or
    # joins two strings with nothing between them, so what is inside a string stays inside.
    skeleton = body.translate(_ONE_KIND, _NOT_STRUCTURE)
    if skeleton.count(b"[") <= limit:
        return False  # most bodies: too few brackets to nest that deep
    skeleton = skeleton.replace(b'""', b"")
    if b'"' in skeleton:
        skeleton = b"".join(skeleton.split(b'"')[::2])  # outside strings only
    brackets = skeleton
    if len(brackets) <= 2 * limit:
        return False
    if b"[" * (limit + 1) in brackets:
        return True
    # Each pass removes the innermost level; a document still nested after ``limit`` passes is
    # deeper than ``limit``.
    for _ in range(limit):
        shallower = brackets.replace(b"[]", b"")
        if not shallower or shallower == brackets:
            return False
        brackets = shallower
    return True
