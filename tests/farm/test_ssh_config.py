"""Boards named by their ~/.ssh/config alias: HostName, Port, User, IdentityFile,
UserKnownHostsFile and ProxyCommand come from the OpenSSH config, against the real sshd."""
from __future__ import annotations

import sys
import textwrap

import pytest

from device_farm.inventory import load_inventory
from device_farm.ssh_config import _jump_command
from device_farm.transports import open_transport
from device_farm.errors import DeviceError

pytestmark = pytest.mark.needs_sshd

# a ProxyCommand: relays its stdin/stdout to host:port (what `nc host port` does)
RELAY = textwrap.dedent("""
    import socket, sys, threading
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
    open(sys.argv[3], "a").write("relayed\\n")
    def up():
        while True:
            data = sys.stdin.buffer.read1(65536)
            if not data:
                s.shutdown(socket.SHUT_WR)
                return
            s.sendall(data)
    threading.Thread(target=up, daemon=True).start()
    while True:
        data = s.recv(65536)
        if not data:
            break
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
""")


def _write(tmp_path, sshd, extra: str = "") -> str:
    cfg = tmp_path / "ssh_config"
    cfg.write_text(textwrap.dedent(f"""\
        Host myboard
            HostName 127.0.0.1
            Port {sshd.port}
            User {sshd.user}
            IdentityFile {sshd.user_key}
            UserKnownHostsFile {sshd.known_hosts}
        {extra}"""))
    return str(cfg)


def _inventory(tmp_path, body: str):
    path = tmp_path / "devices.toml"
    path.write_text(body)
    return load_inventory(str(path))


def test_an_ssh_config_alias_is_enough(sshd, tmp_path):
    cfg = _write(tmp_path, sshd)
    inv = _inventory(tmp_path, f'[[device]]\nname = "b"\ntransport = "ssh"\nhost = "myboard"\n'
                               f'ssh_config = "{cfg}"\npython = "{sys.executable}"\n')
    spec = inv.get("b")
    assert (spec.host, spec.port, spec.user, spec.key_file) == (
        "127.0.0.1", sshd.port, sshd.user, sshd.user_key)
    assert open_transport(spec).shell("echo hello", timeout=20).stdout == "hello\n"


def test_the_inventory_wins_over_the_config(sshd, tmp_path):
    cfg = _write(tmp_path, sshd)
    inv = _inventory(tmp_path, f'[[device]]\nname = "b"\ntransport = "ssh"\nhost = "myboard"\n'
                               f'ssh_config = "{cfg}"\nport = 2\nuser = "someone"\n')
    assert (inv.get("b").port, inv.get("b").user) == (2, "someone")


def test_proxy_command_from_the_config_carries_the_connection(sshd, tmp_path):
    relay = tmp_path / "relay.py"
    relay.write_text(RELAY)
    log = tmp_path / "relay.log"
    cfg = _write(tmp_path, sshd, f"Host viaproxy\n    HostName 127.0.0.1\n"
                                 f"    Port {sshd.port}\n    User {sshd.user}\n"
                                 f"    IdentityFile {sshd.user_key}\n"
                                 f"    UserKnownHostsFile {sshd.known_hosts}\n"
                                 f"    ProxyCommand {sys.executable} {relay} %h %p {log}\n")
    inv = _inventory(tmp_path, f'[[device]]\nname = "p"\ntransport = "ssh"\n'
                               f'host = "viaproxy"\nssh_config = "{cfg}"\n')
    spec = inv.get("p")
    assert spec.proxy_command.endswith(f"127.0.0.1 {sshd.port} {log}")
    assert open_transport(spec).shell("echo via", timeout=20).stdout == "via\n"
    assert log.read_text() == "relayed\n"


def test_a_named_config_that_is_missing_is_an_error(tmp_path):
    with pytest.raises(DeviceError, match="ssh_config .* does not exist"):
        _inventory(tmp_path, '[[device]]\nname = "b"\ntransport = "ssh"\nhost = "x"\n'
                             'ssh_config = "nope"\n')


def test_proxy_jump_becomes_ssh_w_like_openssh():
    assert _jump_command("gw", "10.0.0.5", 22) == ["ssh", "-W", "10.0.0.5:22", "gw"]
    assert _jump_command("a,admin@b:2222", "board", 2200) == [
        "ssh", "-J", "a", "-W", "board:2200", "-p", "2222", "admin@b"]
