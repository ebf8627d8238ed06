"""Input text files (templates, TOML, profiles): UTF-8 without a byte-order mark, or an error at
the line that is not.

A leading UTF-8 byte-order mark (EF BB BF, which Windows Notepad writes) is an **error**, not
skipped: TarsCpp's TC_Config would read it as part of the first line (its trim() knows only
blanks, tabs and line ends), so the same template would mean something else under Tars; and a
TOML reader sees an invisible character in the first key. Saving the file without the mark is a
one-step fix that leaves no doubt.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from pathlib import Path

from tarsdock.errors import InputError, Origin, UnreadableInput

BOM = "\ufeff"
# what no template or TOML file holds as text: C0 controls but tab and line ends, and DEL
CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def decode(raw: bytes, shown: str) -> str:
    """The text of a file's bytes; InputError at the line of the first bad byte or at the BOM."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as problem:
        line = raw[:problem.start].count(b"\n") + 1
        column = problem.start - (raw.rfind(b"\n", 0, problem.start) + 1) + 1
        raise InputError(Origin(shown, line), f"not UTF-8 text: byte 0x{raw[problem.start]:02x} "
                         f"at column {column} ({problem.reason})") from None
    if text.startswith(BOM):
        raise InputError(Origin(shown, 1), "the file starts with a UTF-8 byte-order mark "
                         "(U+FEFF, as Windows Notepad writes); TarsCpp would read it as part "
                         "of the first line: save the file as UTF-8 without BOM") from None
    control = CONTROL.search(text)
    if control:
        # TarsCpp would keep it in a key or value (and write it into the service's config);
        # NULs between letters are a UTF-16 file, which is valid UTF-8 byte for byte
        at = control.start()
        line, column = text.count("\n", 0, at) + 1, at - (text.rfind("\n", 0, at) + 1) + 1
        hint = " (a UTF-16 file? save it as UTF-8)" if control.group() == "\0" else ""
        raise InputError(Origin(shown, line), f"control character U+{ord(control.group()):04X} "
                         f"at column {column}{hint}: not text")
    return text


def read(path: str | Path, shown: str, origin: Origin | None = None,
         key: str | None = None) -> str:
    """Read and decode a file; a file that cannot be read is an error at `origin` (default: the
    file itself), naming the file and the cause."""
    try:
        raw = _regular_file_bytes(path)
    except OSError as problem:
        raise UnreadableInput(origin or Origin(shown), f"cannot read {shown}: "
                              f"{problem.strerror}", key) from None
    if raw is None:
        raise UnreadableInput(origin or Origin(shown), f"cannot read {shown}: not a regular "
                              "file", key)
    return decode(raw, shown)


def _regular_file_bytes(path: str | Path) -> bytes | None:
    """A file's bytes; None when it is a FIFO or a device, whose read could block for ever.

    One open, then a look at what was opened (no stat before: a node reads 1,000 templates);
    O_NONBLOCK keeps the open of a FIFO from waiting for a writer. Plain os calls: a file
    object costs as much as the system calls here.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR))
        if not stat.S_ISREG(info.st_mode):
            return None
        chunks = []
        while chunk := os.read(fd, info.st_size + 1):   # to the end, should the file grow
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def password(raw: bytes, receiver: str = "the registry") -> str:
    """The password in a password_file's bytes: UTF-8 text without its final line break.

    Raises ValueError naming what would reach `receiver` as part of the password otherwise: a
    byte-order mark, a byte that is not UTF-8, a control character (a second line, a NUL).
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as problem:
        raise ValueError(f"not UTF-8 text: byte 0x{raw[problem.start]:02x} at offset "
                         f"{problem.start}") from None
    if text.startswith(BOM):
        raise ValueError("starts with a UTF-8 byte-order mark (U+FEFF, as Windows Notepad "
                         f"writes), which {receiver} would get as part of the password: save "
                         "it as UTF-8 without BOM")
    text = text.rstrip("\r\n")
    bad = next((char for char in text if ord(char) < 0x20 or ord(char) == 0x7f), None)
    if bad is not None:
        raise ValueError(f"holds the control character U+{ord(bad):04X} (a second line?), which "
                         f"{receiver} would get as part of the password")
    if not text:
        raise ValueError("is empty")
    return text
