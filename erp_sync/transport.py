"""The HTTP client that delivers to ERP endpoints, and connects only where it may.

httpx resolves and connects inside httpcore's network backend; :class:`GuardedBackend`
takes its place: it resolves the host once, checks every address it got
(:mod:`mes.netguard`, allow-list ``MES_OUTBOUND_ALLOWED_HOSTS``) and connects to a checked
address, so a second resolution (DNS rebinding) cannot send the request elsewhere. TLS
still verifies, and sends as SNI, the URL's host name, and the Host header stays the URL's.
The client follows no redirects and reads no proxy settings from the environment (a proxy
would connect on our behalf, unchecked).
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx
from django.conf import settings

from mes import netguard


class NameNotResolved(netguard.TargetNotAllowed):
    def __init__(self, host: str) -> None:
        super().__init__(f"name {host} not resolved")


class GuardedBackend(httpcore.NetworkBackend):
    def __init__(
        self,
        *,
        refused: frozenset[str] = netguard.WEBHOOK,
        allow: netguard.AllowList | None = None,
        resolve: Any = socket.getaddrinfo,
    ) -> None:
        self.refused = refused
        self.allow = allow  # None: the setting, read at each connection
        self.resolve = resolve
        self.inner = httpcore.SyncBackend()

    def _allow(self) -> netguard.AllowList:
        if self.allow is not None:
            return self.allow
        return netguard.allow_list(tuple(settings.MES_OUTBOUND_ALLOWED_HOSTS))

    def addresses(self, host: str, port: int) -> list[str]:
        """Every address ``host`` resolves to, checked; raises
        :class:`~mes.netguard.TargetNotAllowed`."""
        try:
            infos = self.resolve(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError):
            raise NameNotResolved(host) from None
        found = list(dict.fromkeys(info[4][0] for info in infos))
        if not found:
            raise NameNotResolved(host)
        checked = netguard.check_addresses(host, found, refused=self.refused, allow=self._allow())
        return [str(address) for address in checked]

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        last: Exception | None = None
        for address in self.addresses(host, port):
            try:
                return self.inner.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    def connect_unix_socket(self, *args: Any, **kwargs: Any) -> httpcore.NetworkStream:
        raise netguard.TargetNotAllowed("unix sockets are not allowed")

    def sleep(self, seconds: float) -> None:
        self.inner.sleep(seconds)


class GuardedTransport(httpx.HTTPTransport):
    def __init__(self, *, backend: GuardedBackend | None = None, **kwargs: Any) -> None:
        super().__init__(trust_env=False, **kwargs)
        # httpx takes no network backend; its pool does (httpcore's documented parameter).
        self._pool = httpcore.ConnectionPool(
            # SSL_CERT_FILE / SSL_CERT_DIR name a plant's own CA; proxies stay ignored.
            ssl_context=httpx.create_ssl_context(),
            max_connections=100,
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
            network_backend=backend or GuardedBackend(),
        )


def delivery_client(*, timeout: float, backend: GuardedBackend | None = None) -> httpx.Client:
    return httpx.Client(
        transport=GuardedTransport(backend=backend),
        timeout=timeout,
        follow_redirects=False,
        trust_env=False,
    )
