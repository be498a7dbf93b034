"""mes.netguard: which addresses the MES connects to for ERP webhooks and PLCs, alone."""

from __future__ import annotations

from ipaddress import ip_address

import pytest

from mes import netguard
from mes.netguard import PLC, WEBHOOK, AddressNotAllowed, AllowList, TargetNotAllowed

NOTHING = AllowList()

# address, kind: every special kind, also written as IPv6 around an IPv4 address.
SPECIAL = [
    ("0.0.0.0", "unspecified"),
    ("::", "unspecified"),
    ("127.0.0.1", "loopback"),
    ("127.8.9.10", "loopback"),
    ("::1", "loopback"),
    ("::ffff:127.0.0.1", "loopback"),
    ("64:ff9b::7f00:1", "loopback"),  # NAT64 of 127.0.0.1
    ("2002:7f00:1::", "loopback"),  # 6to4 of 127.0.0.1
    ("169.254.169.254", "link-local"),
    ("fe80::1", "link-local"),
    ("::ffff:169.254.169.254", "link-local"),
    ("224.0.0.1", "multicast"),
    ("ff02::1", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "reserved"),
    ("10.1.2.3", "private"),
    ("172.16.0.1", "private"),
    ("172.31.255.254", "private"),
    ("192.168.1.1", "private"),
    ("fc00::1", "private"),
    ("fd12:3456::1", "private"),
    ("fec0::1", "private"),  # site-local, deprecated
    ("::ffff:10.0.0.1", "private"),
    ("100.64.0.1", "not public"),  # shared address space (carrier-grade NAT)
]
PUBLIC = ["8.8.8.8", "172.32.0.1", "2606:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"]


@pytest.mark.parametrize("address,kind", SPECIAL)
def test_webhooks_go_to_public_addresses_only(address, kind):
    assert netguard.address_problem(address, refused=WEBHOOK, allow=NOTHING) == kind


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_pass(address):
    assert netguard.address_problem(address, refused=WEBHOOK, allow=NOTHING) is None
    assert netguard.address_problem(address, refused=PLC, allow=NOTHING) is None


@pytest.mark.parametrize("address,kind", SPECIAL)
def test_plcs_may_be_private_but_not_loopback_link_local_or_the_like(address, kind):
    expected = None if kind in ("private", "not public") else kind
    assert netguard.address_problem(address, refused=PLC, allow=NOTHING) == expected


def test_the_allow_list_takes_addresses_networks_and_names():
    allow = AllowList.parse(["127.0.0.1", " 10.20.0.0/16 ", "[::1]", "ERP.Plant.Local.", ""])

    assert allow.names == {"erp.plant.local"}
    for address in ("127.0.0.1", "::ffff:127.0.0.1", "10.20.3.4", "::1"):
        assert netguard.address_problem(address, refused=WEBHOOK, allow=allow) is None
    for address, kind in (("127.0.0.2", "loopback"), ("10.21.0.1", "private")):
        assert netguard.address_problem(address, refused=WEBHOOK, allow=allow) == kind
    # A name on the list passes whatever it resolves to; another name is checked.
    assert netguard.check_addresses(
        "erp.plant.local", ["10.9.9.9"], refused=WEBHOOK, allow=allow
    ) == [ip_address("10.9.9.9")]
    with pytest.raises(AddressNotAllowed, match=r"^target address 10\.9\.9\.9 is not allowed"):
        netguard.check_addresses("erp.example.com", ["10.9.9.9"], refused=WEBHOOK, allow=allow)


@pytest.mark.parametrize("entry", ["10.0.0.1/8", "10.0.0.0/33", "not a host", "fe80::zz", "a/b"])
def test_a_bad_allow_list_entry_is_named(entry):
    with pytest.raises(ValueError, match="is not an IP address, a CIDR network or a host name"):
        AllowList.parse(["127.0.0.1", entry])


def test_every_resolved_address_is_checked_not_only_the_first():
    allow = AllowList.parse(["127.0.0.1"])
    with pytest.raises(AddressNotAllowed) as refused:
        netguard.check_addresses(
            "erp.example.com", ["127.0.0.1", "169.254.169.254"], refused=WEBHOOK, allow=allow
        )
    assert str(refused.value) == "target address 169.254.169.254 is not allowed (link-local)"


@pytest.mark.parametrize(
    "host,expected",
    [
        ("127.1", ["127.0.0.1"]),
        ("2130706433", ["127.0.0.1"]),
        ("0x7f.1", ["127.0.0.1"]),
        ("0177.0.0.1", ["127.0.0.1"]),
        ("[::1]", ["::1"]),
        ("LOCALHOST.", ["127.0.0.1", "::1"]),
        ("app.localhost", ["127.0.0.1", "::1"]),
        ("erp.example.com", None),
        ("0xdead.beef", None),
    ],
)
def test_literal_addresses_in_every_form_a_resolver_takes(host, expected):
    found = netguard.literal_addresses(host)
    assert (None if found is None else [str(a) for a in found]) == expected


@pytest.mark.parametrize(
    "url,message",
    [
        ("ftp://erp.example.com/x", "scheme 'ftp' is not allowed; use http or https"),
        ("file:///etc/passwd", "scheme 'file' is not allowed; use http or https"),
        ("erp.example.com/x", "scheme '(none)' is not allowed; use http or https"),
        ("http:///x", "the URL has no host"),
        ("http://[::1/x", "not a valid URL"),
        ("http://127.0.0.1:5432/", "target address 127.0.0.1 is not allowed (loopback)"),
        ("https://[::1]/", "target address ::1 is not allowed (loopback)"),
        ("http://localhost:8000/", "target address 127.0.0.1 is not allowed (loopback)"),
        ("http://2130706433/", "target address 127.0.0.1 is not allowed (loopback)"),
        (
            "http://169.254.169.254/latest",
            "target address 169.254.169.254 is not allowed (link-local)",
        ),
        ("http://192.168.0.10/", "target address 192.168.0.10 is not allowed (private)"),
    ],
)
def test_urls_are_checked_at_registration(url, message):
    with pytest.raises(TargetNotAllowed) as refused:
        netguard.check_url(url, allow=NOTHING)
    assert str(refused.value) == message


def test_names_pass_registration_and_wait_for_the_connection():
    netguard.check_url("https://erp.example.com/mes/events", allow=NOTHING)
    netguard.check_url("HTTP://8.8.8.8/", allow=NOTHING)
    netguard.check_url("http://127.0.0.1:8089/", allow=AllowList.parse(["127.0.0.0/8"]))
