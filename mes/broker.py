"""The embedded broker: kombu's filesystem transport, made safe against a killed process.

Kombu's own transport writes a message straight into the queue folder. A publisher killed
mid-write (beat runs inside the demo's worker, and plants do pull plugs) leaves an empty or
truncated ``.msg`` file; a consumer can also pick a file up while it is still being written.
Every worker that reads that file then fails to decode it, and the queue is stuck for good.

Here a message is written under a name no consumer looks at, flushed to disk, and renamed
into place, so a consumer only ever sees whole messages. A file that still cannot be
decoded (written by another program, or a damaged disk) is moved to a ``corrupt`` folder
beside the queue and logged, and the next message is delivered.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import uuid
from pathlib import Path
from queue import Empty
from time import monotonic

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import bytes_to_str, str_to_bytes
from kombu.utils.json import dumps, loads

logger = logging.getLogger(__name__)

# Kombu's consumers take files whose name is ``<anything>.<queue>.msg``; a name starting
# with this prefix has no such suffix until it is renamed.
PARTIAL_PREFIX = ".partial-"


# A partial file older than this belongs to a publisher that died; it is removed.
STALE_PARTIAL_SECONDS = 3600


class Channel(filesystem.Channel):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._remove_stale_partials()

    def _remove_stale_partials(self) -> None:
        folder = self.data_folder_out
        cutoff = time.time() - STALE_PARTIAL_SECONDS
        try:
            entries = list(os.scandir(folder))
        except FileNotFoundError:
            return
        for entry in entries:
            if not entry.name.startswith(PARTIAL_PREFIX):
                continue
            with contextlib.suppress(OSError):  # gone already
                if entry.stat().st_mtime < cutoff:
                    os.unlink(entry.path)

    def _put(self, queue, payload, **kwargs):
        """Put ``payload`` onto ``queue``: whole or not at all."""
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        folder = self.data_folder_out
        final = os.path.join(folder, name)
        partial = os.path.join(folder, PARTIAL_PREFIX + name.replace(".", "-"))
        data = str_to_bytes(dumps(payload))
        try:
            with open(partial, "wb", buffering=0) as f:
                f.write(data)
                os.fsync(f.fileno())
            os.replace(partial, final)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(partial)
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc

    def _get(self, queue):
        """Get the next message from ``queue``, setting aside files that do not decode."""
        while True:
            payload_file = self._take(queue)
            try:
                payload = Path(payload_file).read_bytes()
            except OSError as exc:
                raise ChannelError(f"Cannot read file {payload_file!r} from queue.") from exc
            try:
                message = loads(bytes_to_str(payload))
            except ValueError:
                self._set_aside(payload_file, len(payload))
                continue
            if not self.store_processed:
                os.remove(payload_file)
            return message

    def _take(self, queue) -> str:
        """Move the oldest file of ``queue`` out of the queue folder; return its new path."""
        suffix = f"{queue}.msg"
        processed = self.processed_folder if self.store_processed else self._claim_folder()
        for filename in sorted(os.listdir(self.data_folder_in)):
            if filename.partition(".")[2] != suffix:
                continue
            try:
                # A rename within one file system: exactly one consumer gets the file.
                os.rename(
                    os.path.join(self.data_folder_in, filename),
                    os.path.join(processed, filename),
                )
            except OSError:
                continue  # another consumer took it first
            return os.path.join(processed, filename)
        raise Empty()

    def _claim_folder(self) -> str:
        """Where a consumer moves a message before reading it when processed files are not
        kept: a folder beside the queue (same file system, so the move is an atomic rename).
        """
        folder = os.path.join(self.data_folder_in, ".claimed")
        os.makedirs(folder, exist_ok=True)
        return folder

    def _set_aside(self, payload_file: str, size: int) -> None:
        folder = os.path.join(self.data_folder_in, ".corrupt")
        os.makedirs(folder, exist_ok=True)
        target = os.path.join(folder, os.path.basename(payload_file))
        os.replace(payload_file, target)
        logger.error(
            "Broker message %s (%d bytes) does not decode; moved to %s and skipped.",
            os.path.basename(payload_file),
            size,
            folder,
        )


class Transport(filesystem.Transport):
    Channel = Channel
