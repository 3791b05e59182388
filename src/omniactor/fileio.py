"""Writing files so that a kill or a full disk never leaves half of one.

Two kinds of write, each either complete or not there at all:

- ``write_text_atomic`` / ``write_bytes_atomic``: the whole file goes to a temporary file in
  the same folder, is flushed and fsynced, then ``os.replace``-d over the target. A failure
  removes the temporary file and leaves the previous version of the target untouched.
- ``JsonLinesAppender``: one JSON record per ``append``, written with one ``write`` call;
  a write that fails (a full disk) is cut back off the file, so a line is whole or absent.
  A line cut by a kill mid-write (only possible for records of many kilobytes) is dropped
  when the file is next opened, and counted (``dropped``). ``read_json_lines`` reads such a
  file, dropping and counting lines that are not whole JSON.

Every ``OSError`` raised here names the file (``err.filename``), so the command line's
``error: <message>`` says which file could not be written (``errors.error_message``).

This module imports only the standard library.
"""

from __future__ import annotations

import errno
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any


def named(err: OSError, path: str | os.PathLike) -> OSError:
    """``err`` with ``path`` as its file name (as ``open`` would have said), keeping its errno and
    class (``FileNotFoundError``, ...); ``err`` itself when it already names a file."""
    if err.filename is not None:
        return err
    if err.errno is None:
        return OSError(f"{path}: {err}")
    renamed = OSError(err.errno, err.strerror or os.strerror(err.errno), os.fspath(path))
    renamed.__cause__ = err
    return renamed


_OS_ERROR = re.compile(r"os error (\d+)|\[Errno (\d+)\]")


@contextmanager
def naming(path: str | os.PathLike, also: tuple[type[BaseException], ...] = ()) -> Iterator[None]:
    """Re-raise an ``OSError`` of the block with ``path`` as its file name (when it names none).

    ``also``: other errors that mean the write failed, as libraries raise them for a full disk
    (torch's ``RuntimeError``, safetensors' ``SafetensorError``); they become an ``OSError``
    naming ``path``, with the errno their message gives (``EIO`` otherwise) and their text."""
    try:
        yield
    except OSError as err:
        raised = named(err, path)
        if raised is err:
            raise
        raise raised from err
    except also as err:
        found = _OS_ERROR.search(str(err))
        code = int(found.group(1) or found.group(2)) if found else errno.EIO
        text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise OSError(code, f"{os.strerror(code)} (could not be written: {type(err).__name__}: {text})",
                      os.fspath(path)) from err


def write_all(fd: int, data: bytes | bytearray) -> None:
    """``os.write`` until every byte is written (a short write is continued, an error raised)."""
    view = memoryview(bytes(data))  # a copy: a bytearray stays resizable whatever the traceback holds
    while view:
        view = view[os.write(fd, view):]


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Replace ``path`` by a file holding ``data``, or leave it as it was (see the module docstring)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with naming(path):
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                write_all(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
    except BaseException:
        with suppress(OSError):
            tmp.unlink()
        raise


def write_text_atomic(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> None:
    """``write_bytes_atomic`` of ``text`` encoded."""
    write_bytes_atomic(path, text.encode(encoding))


def json_line(record: Any) -> bytes:
    """``record`` as one line of JSON (UTF-8, newline-terminated)."""
    return (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")


def _drop_cut_tail(fd: int) -> int:
    """Truncate a last line without its newline (a write cut by a kill); 1 when one was dropped.
    A last line that is whole JSON and only lacks its newline gets the newline instead."""
    size = os.fstat(fd).st_size
    if not size or os.pread(fd, 1, size - 1) == b"\n":
        return 0
    end, chunk = size, 1 << 16
    while True:  # the end of the last whole line
        start = max(0, end - chunk)
        newline = os.pread(fd, end - start, start).rfind(b"\n")
        if newline >= 0 or start == 0:
            keep = start + newline + 1 if newline >= 0 else 0
            break
        end = start
    try:
        json.loads(os.pread(fd, size - keep, keep))
    except ValueError:
        os.ftruncate(fd, keep)
        return 1
    write_all(fd, b"\n")
    return 0


class JsonLinesAppender:
    """Appends JSON records to ``path``, one line each, every line whole or absent (module docstring).

    ``dropped``: 1 when opening cut off a last line an interrupted writer left without its newline."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        with naming(self.path):
            self._fd: int | None = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
            self.dropped = _drop_cut_tail(self._fd)

    def append(self, record: Any) -> None:
        if self._fd is None:
            raise ValueError(f"{self.path}: append to a closed JsonLinesAppender")
        data = json_line(record)
        with naming(self.path):
            size = os.fstat(self._fd).st_size
            try:
                write_all(self._fd, data)
            except OSError:
                with suppress(OSError):
                    os.ftruncate(self._fd, size)  # never leave a part of the line
                raise

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> JsonLinesAppender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_json_lines(path: str | os.PathLike) -> tuple[list[Any], int]:
    """The records of a JSON-lines file (none when it does not exist) and how many lines were
    dropped because they are not whole JSON (cut by a kill or a full disk); blank lines are skipped."""
    path = Path(path)
    if not path.exists():
        return [], 0
    records, dropped = [], 0
    with naming(path), open(path, "rb") as f:
        for raw in f:
            if not raw.strip():
                continue
            try:
                records.append(json.loads(raw))
            except ValueError:  # JSONDecodeError, or bytes that are not UTF-8
                dropped += 1
    return records, dropped


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine (a zombie, killed but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


#: a lock file still empty after this long was left by a process killed between creating and filling it
EMPTY_LOCK_SECONDS = 10.0


def remove_stale_lock(path: str | os.PathLike) -> bool:
    """Delete the pid lock file ``path`` when the process it names is gone (killed while holding
    it), or when it has stayed empty for ``EMPTY_LOCK_SECONDS``; True when it was removed."""
    import time

    try:
        with open(path, "rb") as f:
            text = f.read().strip()
            seen = os.fstat(f.fileno())
    except OSError:
        return False
    try:
        pid = int(text) if text else 0
    except ValueError:
        pid = 0
    if pid and (pid == os.getpid() or pid_alive(pid)):
        return False
    if not pid and time.time() - seen.st_mtime < EMPTY_LOCK_SECONDS:
        return False
    try:
        if os.stat(path).st_ino != seen.st_ino:  # another process took the lock over meanwhile
            return False
        os.unlink(path)
    except OSError:
        return False
    return True
