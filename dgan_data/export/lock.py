"""Advisory fcntl locks on an export folder (shared, exclusive, per shard)."""

from __future__ import annotations

import contextlib
import errno
import itertools
import logging
import os
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from .records import (
    _LOCK,
    MAX_SHARDS,
    ExportBusyError,
    _InTheWayError,
    _kind_problem,
    _lock_link_problem,
)

log = logging.getLogger(__name__)

try:
    import fcntl
except ImportError:  # no advisory locks on this platform (Windows)
    fcntl = None  # type: ignore[assignment]


# ------------------------------------------------------------------------ locks
_FOLDER_BYTE, _SETUP_BYTE, _SHARD_BYTE = 0, 1, 2
# held shared by a process waiting for the folder: the lock file (and the note in it)
# stays while someone waits
_WAITING_BYTE = _SHARD_BYTE + MAX_SHARDS
_NOTE_MAX = 256
_HELD: set[str] = set()  # folders this process holds (POSIX locks never exclude oneself)
_HELD_GUARD = threading.Lock()


_WARNED: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _WARNED:
        _WARNED.add(message)
        log.warning("%s", message)


def _busy(root: Path, what: str) -> ExportBusyError:
    return ExportBusyError(
        f"{root} is busy: {what} (it holds {root / _LOCK}); wait for it to finish, or stop it"
    )


class _ExportLock:
    """fcntl byte-range locks on ``root/.export.lock``: byte 0 the folder (shared while
    generating or verifying, exclusive to select or repair), byte 1 the creation of
    ``dataset.json``, byte 2 + s shard s, and a byte past the shards shared by the
    processes waiting for the folder. The file's content is a note from the last
    process that verified the finished export (see :meth:`write_note`). The kernel
    releases the locks when the process dies, so the lock of a killed export is free at
    once; a left-over file means nothing. Used as a context manager; one per folder and process."""

    def __init__(self, root: Path, *, readonly: bool = False) -> None:
        self.root, self.path, self.readonly = root, root / _LOCK, readonly
        self.fd: int | None = None
        self._key = ""

    def __enter__(self) -> _ExportLock:
        self._key = str(self.root.resolve())
        with _HELD_GUARD:
            if self._key in _HELD:
                raise _busy(self.root, "this process is already exporting into it")
            _HELD.add(self._key)
        return self

    def __exit__(self, *exc: object) -> None:
        # nobody else holds the folder: the lock file can go (a process that opened it
        # meanwhile sees that it was replaced, see _current)
        if (
            not self.readonly
            and self.fd is not None
            and self._try(_FOLDER_BYTE, True)
            and self._try(_WAITING_BYTE, True)
        ):
            self.path.unlink(missing_ok=True)
        self._close()
        with _HELD_GUARD:
            _HELD.discard(self._key)

    def _close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # releases every lock this process holds on the file
            self.fd = None

    def _open(self) -> bool:
        """Open the lock file (created unless read-only); False: read-only and absent,
        a link or not a regular file (which the layout check names). A link is never
        opened for writing: the note written in place would land in the file it links to."""
        flags = os.O_RDONLY if self.readonly else os.O_RDWR | os.O_CREAT
        # O_NONBLOCK: a FIFO there must not hang the open; O_NOFOLLOW: nor a symlink lead on
        flags |= getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0)
        try:
            self.fd = os.open(self.path, flags, 0o644)
        except FileNotFoundError:
            if self.readonly:
                return False
            raise
        except IsADirectoryError:  # (writable opens): a folder in the way, as a link is
            raise _InTheWayError(
                _kind_problem(self.path, folder=False) or f"{self.path} is a folder"
            ) from None
        except OSError as exc:
            if exc.errno == errno.ELOOP and os.path.islink(self.path):  # (O_NOFOLLOW)
                return self._refuse_link(None)
            if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise
            raise PermissionError(
                f"{self.root}: the export folder is not writable ({exc.strerror})"
            ) from None
        st = os.fstat(self.fd)
        if not stat.S_ISREG(st.st_mode):  # read-only opens a folder too
            self._close()
            if self.readonly:  # verify: its layout check names it, with the advice
                return False
            raise _InTheWayError(
                _kind_problem(self.path, folder=False) or f"{self.path} is not a regular file"
            )
        return self._refuse_link(st) if st.st_nlink > 1 else True

    def _refuse_link(self, st: os.stat_result | None) -> bool:
        """A link at the lock file's place (``st``: the open file's fstat, a hard link;
        None: a symlink): read-only, nobody can hold the folder through it (False);
        otherwise an error naming it, before anything is written."""
        self._close()
        if self.readonly:
            return False
        problem = _lock_link_problem(self.path, st)
        raise _InTheWayError(problem or f"{self.path} is a link: move it away, then rerun")

    def _try(self, start: int, exclusive: bool) -> bool:
        if fcntl is None:
            _warn_once(
                f"{self.path}: no fcntl on this platform: concurrent exports are not detected"
            )
            return True
        if self.fd is None:
            return True
        mode = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB
        try:
            fcntl.lockf(self.fd, mode, 1, start)
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                return False
            _warn_once(f"{self.path}: cannot lock ({exc}): concurrent exports are not detected")
        return True

    def _current(self) -> bool:
        """The open file is still the lock file (a finishing export removes it)."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return False
        own = os.fstat(self.fd) if self.fd is not None else st
        return (own.st_dev, own.st_ino) == (st.st_dev, st.st_ino)

    def acquire_folder(self, *, exclusive: bool, wait: float = 0.0) -> bool:
        """Lock the folder; retry for ``wait`` seconds; False if another process holds it."""
        deadline = time.monotonic() + wait
        for replaced in itertools.count():
            if self.fd is None and not self._open():
                return True  # read-only, and no lock file: nobody holds the folder
            if self._try(_FOLDER_BYTE, exclusive):
                if self._current() or replaced >= 100:  # (a file system without inodes)
                    return True
                self._close()
                continue
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    def wait_for_folder(self) -> bytes | None:
        """Lock the folder exclusively, waiting as long as another process holds it
        (a rerun of a finished export: every shard's process may rerun at once).
        Returns the lock file's note as it was when the wait began (None if the file
        was replaced meanwhile, so that a note found later is not taken for new)."""
        self.release()
        if self.fd is None:
            self._open()
        self._try(_WAITING_BYTE, False)  # keeps the file and its note while we wait
        note, told = self.read_note(), False
        while True:
            if self._try(_FOLDER_BYTE, True):
                if self._current():
                    return note
                self._close()  # replaced by a finishing export: start over on the new one
                self._open()
                self._try(_WAITING_BYTE, False)
                note = None
                continue
            if not told:
                log.info("%s: another process is using this finished export; waiting", self.root)
                told = True
            time.sleep(0.05)

    def release(self, shard: int | None = None) -> None:
        """Release the folder lock (and shard ``shard``'s) without closing the file."""
        if fcntl is None or self.fd is None:
            return
        starts = [_FOLDER_BYTE] + ([] if shard is None else [_SHARD_BYTE + shard])
        for start in starts:
            with contextlib.suppress(OSError):
                fcntl.lockf(self.fd, fcntl.LOCK_UN, 1, start)

    def read_note(self) -> bytes:
        """The lock file's content (at most a few hundred bytes; empty if none)."""
        if self.fd is None or fcntl is None:  # no locks, nobody waits: no notes
            return b""
        try:
            return os.pread(self.fd, _NOTE_MAX, 0)
        except OSError:
            return b""

    def write_note(self, note: bytes) -> None:
        """Replace the lock file's content (hold the folder exclusively)."""
        if self.fd is None or self.readonly or fcntl is None:
            return
        try:
            os.ftruncate(self.fd, 0)
            os.pwrite(self.fd, note[:_NOTE_MAX], 0)
        except OSError as exc:  # only an optimisation for processes waiting: never fatal
            log.debug("%s: cannot write the lock note (%s)", self.path, exc)

    def acquire_shard(self, shard: int) -> bool:
        """Lock one shard (call after :meth:`acquire_folder`)."""
        return self._try(_SHARD_BYTE + shard, True)

    @contextlib.contextmanager
    def setup(self, wait: float = 30.0) -> Iterator[None]:
        """Serialise the creation of ``dataset.json`` between shards starting together."""
        deadline = time.monotonic() + wait
        while not self._try(_SETUP_BYTE, True):
            if time.monotonic() >= deadline:
                raise _busy(self.root, "another process is setting up this export")
            time.sleep(0.05)
        try:
            yield
        finally:
            if fcntl is not None and self.fd is not None:
                with contextlib.suppress(OSError):
                    fcntl.lockf(self.fd, fcntl.LOCK_UN, 1, _SETUP_BYTE)
