"""Text rules the published schemas state as JSON Schema ``pattern``, shared by every service.

Each is written so that every dialect that reads it agrees on every string: ECMA-262 in JSON
Schema validators and generated clients, Python's ``re`` in the services' own checks, and the
Rust ``regex`` crate behind pydantic's validation. Hence no ``\\s``, ``\\w`` or ``\\d``, whose
meaning differs between them (Python's ``\\s`` holds U+001C–U+001F, ECMA's lacks U+0085): the
characters are spelled out.
"""

from __future__ import annotations

#: C0 controls and space, DEL and C1 controls, and every other Unicode space or line separator
SPACES_AND_CONTROLS = (
    r"\x00-\x20\x7f-\x9f\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
)
_ADDRESS_CHARACTER = rf"[^@<>\"',;{SPACES_AND_CONTROLS}]"

#: an email address as the services take it: a local part of 1 to 64 characters, ``@``, a domain
#: with a dot; no spaces, controls, ``<>"',;`` or second ``@`` (nothing that could break out of a
#: mail header)
EMAIL_PATTERN = rf"^{_ADDRESS_CHARACTER}{{1,64}}@{_ADDRESS_CHARACTER}+\.{_ADDRESS_CHARACTER}+$"
EMAIL_MAX_LENGTH = 254

#: a meter key: lower-case letters, digits and ``_``, starting with a letter, at most 63
METER_KEY_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"

#: a user id as OpenID Connect defines ``sub`` (ASCII) that a request path can name as it is:
#: printable, without spaces, ``%``, ``/`` or ``\``, and not ``.`` or ``..`` (paths refuse those)
USER_ID_MAX_LENGTH = 200
_ID_CHARACTER = r"[!-$&-.0-\[\]-~]"  # printable ASCII but space % / \
_ID_CHARACTER_NOT_DOT = r"[!-$&-\-0-\[\]-~]"
USER_ID_PATTERN = rf"^(?:{_ID_CHARACTER}*{_ID_CHARACTER_NOT_DOT}{_ID_CHARACTER}*|\.{{3,}})$"
USER_ID_RULE = (
    f"1 to {USER_ID_MAX_LENGTH} printable ASCII characters without spaces, `%`, `/` or "
    "`\\`, and not `.` or `..`"
)
