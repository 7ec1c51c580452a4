"""The response cache, pure: what a cached answer is keyed by, what an entry holds, the
backend interface, and the policy that serves hits and stores validated answers. The
backends themselves (SQLite, Redis) are edges, in ``transforms.cache``."""

from transforms.core.cache.answers import AnswerCache
from transforms.core.cache.backend import CacheBackend, CacheError, CacheUnavailable
from transforms.core.cache.entry import CachedAnswer, decode_entry, encode_entry
from transforms.core.cache.key import answer_key

__all__ = [
    "AnswerCache",
    "CacheBackend",
    "CacheError",
    "CacheUnavailable",
    "CachedAnswer",
    "answer_key",
    "decode_entry",
    "encode_entry",
]
