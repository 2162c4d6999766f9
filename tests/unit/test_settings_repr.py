"""``repr(Settings)`` never shows a Redis password, whatever it contains."""

from __future__ import annotations

from urllib.parse import quote

from hypothesis import given, settings
from hypothesis import strategies as st

from policy_store import Settings, mask_url

SECRETS = ["p@ss", "a@b@c", "pa/ss", "p:w@d", "x?y@z", "@@host", "s3cr#t@", "with space@x"]


def _shown(s: Settings) -> list[str]:
    return [repr(s), str(s)]


def test_a_password_holding_at_signs_slashes_or_colons_is_masked():
    for pw in SECRETS:
        for url in (f"redis://:{pw}@127.0.0.1:6379/0", f"rediss://user:{pw}@redis.internal:6380/2"):
            s = Settings(redis_url=url)
            for text in _shown(s):
                assert pw not in text, (url, text)
                assert "6379" in text or "6380" in text  # the address stays readable


def test_a_password_given_as_a_query_argument_is_masked():
    s = Settings(redis_url="redis://127.0.0.1:6379/0?password=hunter2&socket_timeout=1")
    for text in _shown(s):
        assert "hunter2" not in text and "socket_timeout=1" in text


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zs")), min_size=4))
def test_any_password_is_masked(pw):
    assert mask_url(f"redis://:{pw}@127.0.0.1:6379/0") == "redis://:***@127.0.0.1:6379/0"
    assert mask_url(f"redis://u:{quote(pw, safe='')}@h:1/0") == "redis://u:***@h:1/0"
