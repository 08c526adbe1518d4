"""The near-miss guard: a question similar enough to a cached one still may not take its answer
when the two differ in a negation (or a word of opposite polarity: enable/disable, on/off), in a
number (3 vs 30), or in a named entity (France vs Germany, Ubuntu vs Debian). Embedding
similarity alone serves all of these: "how do I disable X" scores 0.88 against "how do I enable
X" with all-MiniLM-L6-v2, "within 3 days" 0.87 against "within 30 days"."""

from __future__ import annotations

import re
from dataclasses import dataclass

_TOKEN = re.compile(r"\d+(?:[.,]\d+)*|[^\W\d_]+(?:['’][^\W\d_]+)?(?:-[^\W_]+)*")
NEGATIONS = frozenset({"not", "no", "never", "none", "nobody", "nothing", "neither", "nor", "without", "cannot",
                       "nowhere", "hardly", "except"})
_ANTONYMS = [("enable", "disable"), ("on", "off"), ("allow", "deny"), ("allow", "block"), ("add", "remove"),
             ("increase", "decrease"), ("start", "stop"), ("open", "close"), ("lock", "unlock"),
             ("include", "exclude"), ("accept", "reject"), ("install", "uninstall"), ("encrypt", "decrypt"),
             ("before", "after"), ("max", "min"), ("maximum", "minimum"), ("more", "less"), ("up", "down"),
             ("upload", "download"), ("import", "export"), ("in", "out"), ("true", "false"), ("yes", "no"),
             ("show", "hide"), ("connect", "disconnect"), ("subscribe", "unsubscribe"), ("buy", "sell"),
             ("win", "lose"), ("higher", "lower"), ("first", "last"), ("always", "never"), ("can", "cannot"),
             ("join", "leave"), ("create", "delete"), ("mute", "unmute"), ("pause", "resume"), ("left", "right")]
ANTONYMS = frozenset(_ANTONYMS) | frozenset((b, a) for a, b in _ANTONYMS)
_POLARITY_PREFIXES = ("dis", "un", "non", "in", "im", "il", "ir", "de", "anti", "en")
_NUMBER_WORDS = {word: str(value) for value, word in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty".split())}
_NUMBER_WORDS.update({"thirty": "30", "forty": "40", "fifty": "50", "sixty": "60", "seventy": "70",
                      "eighty": "80", "ninety": "90", "hundred": "100", "thousand": "1000", "million": "1000000",
                      "once": "1", "twice": "2", "half": "0.5", "dozen": "12"})
#: Capitalised at a sentence's start without being a name.
_COMMON = frozenset("""a an the i my me we our you your it its is are was were be been am do does did done can could
will would shall should may might must how what which who whom whose why when where whether if please tell show
give explain describe list find get make help let there this that these those and or but so then also is in on at
for from to of with by about as any some all each every one hi hello hey thanks thank ok okay yes no not""".split())
_SUFFIXES = ("ing", "ed", "s")


@dataclass(frozen=True, slots=True)
class Features:
    negations: int
    numbers: tuple[str, ...]
    entities: frozenset[str]
    words: frozenset[str]


def features(text: str) -> Features:
    negations = 0
    numbers: list[str] = []
    entities: set[str] = set()
    words: set[str] = set()
    for match in _TOKEN.finditer(text):
        token = match.group(0)
        lower = token.lower().replace("’", "'")
        if lower.endswith("n't"):
            negations += 1
            lower = lower[:-3] or lower
        if token[0].isdigit():
            numbers.append(token.replace(",", ""))
            continue
        if lower in NEGATIONS:
            negations += 1
        if lower in _NUMBER_WORDS:
            numbers.append(_NUMBER_WORDS[lower])
        if _is_entity(token, lower):
            entities.add(lower)
        words.add(lower)
    return Features(negations, tuple(sorted(numbers)), frozenset(entities), frozenset(words))


def _is_entity(token: str, lower: str) -> bool:
    if any(ch.isdigit() for ch in token) or (any(ch.isupper() for ch in token[1:]) and token != token.upper()):
        return True  # GPT-4o, iPhone, Zephyr-9
    if token == token.upper() and len(token) > 1:
        return lower not in _COMMON  # ACME, SSO
    if not token[0].isupper() or lower.split("'")[0] in _COMMON:
        return False
    return True


def refusal(question: str, cached: str) -> str | None:
    """Why ``cached``'s answer must not serve ``question`` (``negation``, ``number``, ``entity``),
    or ``None`` when the guard sees no difference that changes the meaning."""
    asked, stored = features(question), features(cached)
    if asked.negations != stored.negations:
        return "negation"
    if asked.numbers != stored.numbers:
        return "number"
    if _unmatched(asked.entities, stored.words) or _unmatched(stored.entities, asked.words):
        return "entity"
    if _opposite_words(asked.words - stored.words, stored.words - asked.words):
        return "negation"
    return None


def _unmatched(entities: frozenset[str], words: frozenset[str]) -> bool:
    """A name of one question that the other does not mention at all (in any case or form)."""
    stems = {_stem(word) for word in words}
    return any(entity not in words and _stem(entity) not in stems for entity in entities)


def _opposite_words(only_asked: frozenset[str], only_stored: frozenset[str]) -> bool:
    for a in only_asked:
        for b in only_stored:
            if (_stem(a), _stem(b)) in ANTONYMS or (a, b) in ANTONYMS or _prefix_negated(a, b):
                return True
    return False


def _stem(word: str) -> str:
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            base = word[: -len(suffix)]
            return base + "e" if suffix in ("ed", "ing") and base + "e" in ANTONYM_WORDS else base
    return word


def _prefix_negated(a: str, b: str) -> bool:
    """enable/disable, lock/unlock, able/unable: one word is the other with a polarity prefix, or
    both are one stem with different polarity prefixes."""
    a, b = _stem(a), _stem(b)
    if a == b:
        return False
    for prefix in _POLARITY_PREFIXES:
        if (a == prefix + b or b == prefix + a) and min(len(a), len(b)) >= 3:
            return True
    stems_a = {(a[len(p):], p) for p in _POLARITY_PREFIXES if a.startswith(p)}
    stems_b = {(b[len(p):], p) for p in _POLARITY_PREFIXES if b.startswith(p)}
    return any(sa == sb and pa != pb and len(sa) >= 3 for sa, pa in stems_a for sb, pb in stems_b)


ANTONYM_WORDS = frozenset(word for pair in _ANTONYMS for word in pair)
