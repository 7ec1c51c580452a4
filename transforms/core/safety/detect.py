"""Injection markers in the rendered record: a table of named checks over its text.

    ignore_instructions  "ignore all previous instructions", "your new task is ..."
    reveal_prompt        "print your system prompt", "what were your instructions"
    role_play            "you are now ...", "pretend to be", "developer mode", DAN
    role_marker          a line that starts a chat turn: "system:", "[assistant]", "### user"
    chat_template        chat-template tokens: <|im_start|>, [INST], <<SYS>>, <|eot_id|> ...
    delimiter_forgery    tags or banners posing as the end of the data: </data-...>, END OF DATA
    invisible_unicode    zero-width and other format characters, tag characters, line separators
    bidi_control         bidirectional overrides and isolates (U+202A-E, U+2066-9, ...)
    encoded_payload      base64, hex, percent-encoding or ROT13 that decodes to text one
                         of the first four checks fires on (and the plain text does not)
    repeated_text        a long text that compresses more than ten-fold (one phrase repeated)

The text checks read the text normalised (NFKC, tag characters read as the ASCII they
smuggle, other format characters removed, common Cyrillic and Greek look-alikes mapped to
Latin), so spacing a word with zero-width characters or writing it in full-width,
homoglyph or tag letters does not hide it.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
import unicodedata
import urllib.parse
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from transforms.core.config.safety import INJECTION_CHECKS

__all__ = ["InjectionDetector"]

_IGNORE = re.compile(
    r"\b(ignore|disregard|forget|override|bypass|skip|abandon|drop)\b[^.\n]{0,60}?"
    r"\b(previous|prior|above|earlier|preceding|all|any|the|your|system|original|these|those)"
    r"\b[^.\n]{0,40}?"
    r"\b(instructions?|prompts?|rules?|directions?|guidelines?|directives?|constraints?|context)"
    r"\b"
    r"|\b(new|updated|real|actual|revised)\s+(instructions?|task|rules?|directives?)\s*:"
    r"|\byour\s+(new|real|actual|only)\s+(task|job|role|goal|instruction)\s+is\b",
    re.IGNORECASE,
)
_REVEAL = re.compile(
    r"\b(reveal|print|show|display|repeat|output|tell|give|leak|dump|share|echo|recite|"
    r"what\s+(is|are|was|were))\b[^.\n]{0,50}?"
    r"\b(system|initial|hidden|original|secret|developer|your)\s+"
    r"(prompt|message|instructions?|rules|directives?)\b",
    re.IGNORECASE,
)
_ROLE_PLAY = re.compile(
    r"\byou\s+are\s+now\b|\bfrom\s+now\s+on,?\s+(you|act|respond|answer)\b"
    r"|\bpretend\s+(to\s+be|you\s+are|you're)\b|\bact\s+as\s+(a|an|if|my|the)\b"
    r"|\brole[- ]?play\b|\bplay\s+the\s+role\b|\bdeveloper\s+mode\b|\bjailbr(ea|o)k"
    r"|\bdo\s+anything\s+now\b|(?-i:\bDAN\b)|\bsimulate\s+(being|a|an)\b"
    r"|\byou\s+will\s+now\s+(act|respond|behave|answer)\b",
    re.IGNORECASE,
)
_ROLE_MARKER = re.compile(
    r"(^|\n)\s*(\[|<|#{1,4}\s*|\*\*)?(system|assistant|user|developer|human|ai|bot)"
    r"(\]|>|\*\*)?\s*:",
    re.IGNORECASE,
)
_CHAT_TEMPLATE = re.compile(
    r"<\|[a-z0-9_]{1,32}\|>|\[/?INST\]|<</?SYS>>|</?s>|<(start|end)_of_turn>"
    r"|(^|\n)\s*#{2,4}\s*(instruction|response|system|input)\b",
    re.IGNORECASE,
)
_FORGERY = re.compile(
    r"</?\s*data[-_ ]?[0-9a-z]*\s*>"
    r"|\b(end|close|begin|start)\s+of\s+(the\s+)?(data|input|record|review|text|user\s+input)\b"
    r"|(^|\n)\s*[=\-#*]{3,}\s*(end|begin|start|system|new)\b",
    re.IGNORECASE,
)
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_LINE_SEPARATORS = frozenset("\u2028\u2029")
_EMOJI_JOINERS = frozenset("\u200d\ufe0e\ufe0f")  # legitimate inside emoji sequences
# Cyrillic and Greek letters that look like Latin ones.
_LOOKALIKES = str.maketrans(
    "аеорсухіјѕԁһӏАВЕКМНОРСТХІЈЅαοτνικρΑΒΕΗΙΚΜΝΟΡΤΧΥΖ",
    "aeopcyxijsdhlABEKMHOPCTXIJSaotvikpABEHIKMNOPTXYZ",
)
_BASE64 = re.compile(r"[A-Za-z0-9+/]{24,}={0,2}")
_HEX = re.compile(r"\b(?:[0-9a-fA-F]{2}){12,}\b")
_PERCENT = re.compile(r"(?:%[0-9a-fA-F]{2}){6,}")


# Unicode tag characters spell ASCII invisibly (U+E0020-E007E): read them as that ASCII.
_TAGS = {0xE0000 + c: c for c in range(0x20, 0x7F)}
_NEWLINES = str.maketrans({"\u2028": "\n", "\u2029": "\n", "\r": "\n", "\x85": "\n"})


def normalise(text: str) -> str:
    """NFKC; tag characters read as ASCII, other format characters removed, Unicode line
    breaks as newlines, look-alike letters mapped to Latin."""
    if text.isascii():  # exact: ASCII is NFKC-stable and holds none of what is mapped here
        return text
    folded = unicodedata.normalize("NFKC", text.translate(_TAGS)).translate(_NEWLINES)
    visible = "".join(c for c in folded if unicodedata.category(c) != "Cf")
    return visible.translate(_LOOKALIKES)


def _invisible(text: str) -> bool:
    if text.isascii():  # no format characters, bidi controls or line separators in ASCII
        return False
    for index, char in enumerate(text):
        if char in _BIDI:
            continue
        if char in _LINE_SEPARATORS:
            return True
        if unicodedata.category(char) != "Cf":
            continue
        if (
            char in _EMOJI_JOINERS
            and index
            and unicodedata.category(text[index - 1])
            in (
                "So",
                "Sk",
                "Mn",
            )
        ):
            continue
        return True
    return False


def _decoded(text: str) -> Iterator[str]:
    """What the encoded runs of a text decode to, when that is text."""
    for match in _BASE64.finditer(text):
        run = match.group()
        try:
            raw = base64.b64decode(run + "=" * (-len(run) % 4), validate=True)
        except (binascii.Error, ValueError):
            continue
        yield raw.decode("utf-8", "ignore")
    for match in _HEX.finditer(text):
        yield bytes.fromhex(match.group()).decode("utf-8", "ignore")
    for match in _PERCENT.finditer(text):
        yield urllib.parse.unquote(match.group())
    yield codecs.encode(text, "rot13")


_TEXT_CHECKS: dict[str, re.Pattern[str]] = {
    "ignore_instructions": _IGNORE,
    "reveal_prompt": _REVEAL,
    "role_play": _ROLE_PLAY,
    "role_marker": _ROLE_MARKER,
    "chat_template": _CHAT_TEMPLATE,
    "delimiter_forgery": _FORGERY,
}
_DECODED_CHECKS = ("ignore_instructions", "reveal_prompt", "role_play", "chat_template")


def _compressibility(text: str) -> float:
    data = text.encode()
    return len(zlib.compress(data, 6)) / len(data)


@dataclass(frozen=True)
class InjectionDetector:
    checks: tuple[str, ...] = INJECTION_CHECKS
    repeated_min_chars: int = 400

    def scan(self, values: Sequence[str]) -> tuple[str, ...]:
        """The checks that fire on these rendered values, in table order."""
        text = "\n".join(values)
        plain = normalise(text)
        found = {name for name in self.checks if self._fires(name, text, plain)}
        return tuple(name for name in INJECTION_CHECKS if name in found)

    def _fires(self, name: str, text: str, plain: str) -> bool:
        if name in _TEXT_CHECKS:
            return _TEXT_CHECKS[name].search(plain) is not None
        return _OTHER_CHECKS[name](self, text, plain)


def _encoded(_: InjectionDetector, text: str, plain: str) -> bool:
    """A text check that fires on a decoded run but not on the text as written."""
    hidden = [_TEXT_CHECKS[n] for n in _DECODED_CHECKS if not _TEXT_CHECKS[n].search(plain)]
    return any(check.search(normalise(d)) for d in _decoded(plain) for check in hidden)


def _repeated(detector: InjectionDetector, text: str, plain: str) -> bool:
    return len(text) >= detector.repeated_min_chars and _compressibility(text) < 0.1


_OTHER_CHECKS: dict[str, Callable[[InjectionDetector, str, str], bool]] = {
    "invisible_unicode": lambda _, text, plain: _invisible(text),
    "bidi_control": lambda _, text, plain: any(c in _BIDI for c in text),
    "encoded_payload": _encoded,
    "repeated_text": _repeated,
}
