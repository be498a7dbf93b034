"""Which network addresses the MES may connect to when a user names the target: ERP
webhook URLs and PLC hosts. Pure (the standard ``ipaddress`` module, no I/O): the callers
resolve names and hand the addresses in.

The rule, in words: an address is refused when its kind is in the caller's ``refused`` set
(:data:`WEBHOOK` refuses everything that is not an ordinary public unicast address,
:data:`PLC` only loopback, link-local, unspecified, multicast and reserved addresses, since
PLCs live on private networks), unless the allow-list names it. An IPv4 address written as
IPv6 (``::ffff:127.0.0.1``, NAT64 ``64:ff9b::7f00:1``, 6to4 ``2002:7f00:1::``) is judged
by the IPv4 address inside.

The allow-list (``MES_OUTBOUND_ALLOWED_HOSTS``) holds IP addresses, CIDR networks and host
names. An address or network allows those addresses however they are reached; a host name
allows that name whatever it resolves to (the operator trusts its DNS).

Names are checked twice: when a target is registered, as far as that can be done without
DNS (IP literals in every form a resolver accepts, ``localhost``); and right before each
connection, on every address the name resolves to, connecting to the address checked.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from urllib.parse import urlsplit

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network

UNSPECIFIED = "unspecified"
LOOPBACK = "loopback"
LINK_LOCAL = "link-local"
MULTICAST = "multicast"
RESERVED = "reserved"
PRIVATE = "private"
NOT_PUBLIC = "not public"  # e.g. shared address space 100.64.0.0/10

# ERP endpoints: public addresses only.
WEBHOOK = frozenset({UNSPECIFIED, LOOPBACK, LINK_LOCAL, MULTICAST, RESERVED, PRIVATE, NOT_PUBLIC})
# PLCs sit on private plant networks; the machine itself, link-local (cloud metadata at
# 169.254.169.254), unspecified, multicast and reserved addresses are no PLC.
PLC = frozenset({UNSPECIFIED, LOOPBACK, LINK_LOCAL, MULTICAST, RESERVED})

SCHEMES = ("http", "https")
NAT64 = IPv6Network("64:ff9b::/96")
LOCALHOST = (IPv4Address("127.0.0.1"), IPv6Address("::1"))
_NAME_RE = re.compile(
    r"^(?=.{1,253}$)[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*$"
)
_NUMERIC_V4 = re.compile(r"^[0-9][0-9a-fx.]*$")  # what inet_aton may take: 127.1, 0x7f.1


class TargetNotAllowed(ValueError):
    """The MES does not connect there; ``str()`` says why, for users."""

    def sentence(self) -> str:
        """The reason as a sentence, for form and API errors."""
        text = str(self)
        return f"{text[:1].upper()}{text[1:]}."


class AddressNotAllowed(TargetNotAllowed):
    def __init__(self, address: IPAddress | str, kind: str) -> None:
        super().__init__(f"target address {address} is not allowed ({kind})")
        self.address, self.kind = address, kind


def _normal_host(host: str) -> str:
    return host.strip().removeprefix("[").removesuffix("]").rstrip(".").lower()


@dataclass(frozen=True)
class AllowList:
    names: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = field(default_factory=tuple)

    @classmethod
    def parse(cls, entries: Iterable[str]) -> AllowList:
        """From host names, IP addresses and CIDR networks; ValueError names a bad entry."""
        names: set[str] = set()
        networks: list[IPNetwork] = []
        for raw in entries:
            entry = _normal_host(raw)
            if not entry:
                continue
            try:
                if "/" in entry:
                    networks.append(ip_network(entry))  # strict: host bits set is a mistake
                else:
                    networks.append(ip_network(ip_address(entry)))
                continue
            except ValueError:
                if "/" in entry or ":" in entry or not _NAME_RE.match(entry):
                    raise ValueError(
                        f"{raw!r} is not an IP address, a CIDR network or a host name"
                    ) from None
            names.add(entry)
        return cls(frozenset(names), tuple(networks))

    def allows_name(self, host: str) -> bool:
        return _normal_host(host) in self.names

    def allows(self, address: IPAddress) -> bool:
        return any(address in network for network in self.networks)


@lru_cache(maxsize=16)
def allow_list(entries: tuple[str, ...]) -> AllowList:
    """:meth:`AllowList.parse`, remembered (the setting is read at every check)."""
    return AllowList.parse(entries)


def kind_of(address: IPAddress) -> str | None:
    """What kind of special address this is; None for an ordinary public unicast one."""
    if address.is_unspecified:
        return UNSPECIFIED
    if address.is_loopback:
        return LOOPBACK
    if address.is_link_local:
        return LINK_LOCAL
    if address.is_multicast:
        return MULTICAST
    if address.is_reserved:
        return RESERVED
    if address.is_private or (isinstance(address, IPv6Address) and address.is_site_local):
        return PRIVATE
    if not address.is_global:
        return NOT_PUBLIC
    return None


def _unmapped(address: IPAddress) -> IPAddress:
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _judged(address: IPAddress) -> list[IPAddress]:
    """The addresses that decide about ``address``: itself, or for NAT64 (64:ff9b::/96,
    reserved by the letter) the IPv4 address it reaches; for 6to4 the IPv4 one inside too."""
    if not isinstance(address, IPv6Address):
        return [address]
    if address in NAT64:
        return [IPv4Address(int(address) & 0xFFFFFFFF)]
    if address.sixtofour is not None:
        return [address, address.sixtofour]
    return [address]


def address_problem(
    address: IPAddress | str, *, refused: frozenset[str], allow: AllowList
) -> str | None:
    """The kind that refuses ``address`` ("loopback"), or None when it may be connected to."""
    address = _unmapped(ip_address(address) if isinstance(address, str) else address)
    if allow.allows(address):
        return None
    for candidate in _judged(address):
        kind = kind_of(candidate)
        if kind in refused and not allow.allows(candidate):
            return kind
    return None


def check_addresses(
    host: str, addresses: Iterable[IPAddress | str], *, refused: frozenset[str], allow: AllowList
) -> list[IPAddress]:
    """``addresses`` (what ``host`` resolved to) as IP addresses, each checked: raises
    :class:`AddressNotAllowed` for the first refused one. A host the allow-list names is
    not checked."""
    checked = [ip_address(a) if isinstance(a, str) else a for a in addresses]
    if allow.allows_name(host):
        return checked
    for address in checked:
        kind = address_problem(address, refused=refused, allow=allow)
        if kind is not None:
            raise AddressNotAllowed(_unmapped(address), kind)
    return checked


def literal_addresses(host: str) -> list[IPAddress] | None:
    """The addresses ``host`` stands for without asking DNS: an IP address in any form a
    resolver accepts (``[::1]``, ``127.1``, ``2130706433``, ``0x7f.1``), or loopback for
    ``localhost``; None for a name only DNS can answer."""
    name = _normal_host(host)
    if name == "localhost" or name.endswith(".localhost"):
        return list(LOCALHOST)
    try:
        return [ip_address(name)]
    except ValueError:
        pass
    if _NUMERIC_V4.match(name):
        try:
            return [IPv4Address(socket.inet_aton(name))]
        except OSError:
            return None
    return None


def check_host(host: str, *, refused: frozenset[str], allow: AllowList) -> None:
    """At registration: raises :class:`AddressNotAllowed` when ``host`` is (or, like
    ``localhost``, always resolves to) a refused address. Other names pass here and are
    checked at each connection."""
    addresses = literal_addresses(host)
    if addresses is not None:
        check_addresses(host, addresses, refused=refused, allow=allow)


def url_host(url: str) -> str:
    """The host of an http or https URL. Raises :class:`TargetNotAllowed` for another scheme
    or a URL without a host."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        raise TargetNotAllowed("not a valid URL") from None
    if parts.scheme.lower() not in SCHEMES:
        scheme = parts.scheme or "(none)"
        raise TargetNotAllowed(f"scheme {scheme!r} is not allowed; use http or https")
    if not host:
        raise TargetNotAllowed("the URL has no host")
    return host


def check_url(url: str, *, allow: AllowList, refused: frozenset[str] = WEBHOOK) -> None:
    """An ERP endpoint URL at registration: http or https, to a host :func:`check_host`
    lets through. Raises :class:`TargetNotAllowed` with the reason."""
    check_host(url_host(url), refused=refused, allow=allow)
