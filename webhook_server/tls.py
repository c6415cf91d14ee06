"""HTTPS served by `ymds web` itself, with the certificate reloaded on SIGHUP (Let's Encrypt renewals)."""

from __future__ import annotations

import logging
import signal
import ssl
from asyncio import AbstractEventLoop
from pathlib import Path

log = logging.getLogger(__name__)


class ReloadableTLS:
    """One SSLContext for the server's lifetime; reloading swaps its certificate for new handshakes only."""

    def __init__(self, cert: Path, key: Path) -> None:
        self._cert, self._key = cert, key
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self.context.load_cert_chain(cert, key)

    def reload(self) -> bool:
        """Load the files again; a broken renewal is logged and the running certificate kept."""
        try:
            # Prove the pair on a scratch context first: a half-loaded live context would fail every handshake.
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(self._cert, self._key)
            self.context.load_cert_chain(self._cert, self._key)
        except (OSError, ssl.SSLError) as err:
            log.error("TLS certificate not reloaded, keeping the current one: %s", err)
            return False
        log.info("TLS certificate reloaded from %s", self._cert)
        return True

    def reload_on_sighup(self, loop: AbstractEventLoop) -> None:
        loop.add_signal_handler(signal.SIGHUP, self.reload)
