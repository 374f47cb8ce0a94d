"""The SSH transport against a real OpenSSH server (localhost plays the board)."""
from __future__ import annotations

import os
import time

import pytest

from device_farm.deploy import DeployCache
from device_farm.testing.sshd import LinkProxy
from device_farm.transports import CommandTimeout, HostKeyError, open_transport
from device_farm.transports.base import TransientTransportError
from device_farm.transports.ssh import _POOL
from tests.farm.helpers import HOSTILE_NAME, board_spec, pids_matching

pytestmark = pytest.mark.needs_sshd


def test_shell_streams_exit_code_and_quoting(sshd, clean_cwd):
    t = open_transport(board_spec(sshd))
    res = t.shell("echo out; echo err >&2; exit 9", timeout=20)
    assert (res.exit_code, res.stdout, res.stderr) == (9, "out\n", "err\n")
    args = [HOSTILE_NAME, "$(id)", "a b"]
    res = t.run(["python3", "-c", "import sys; print(repr(sys.argv[1:]))", *args], timeout=20,
                cwd=str(clean_cwd))
    assert res.stdout.strip() == repr(args)
    assert os.listdir(clean_cwd) == []  # nothing injected ran in that folder


def test_one_connection_per_host_with_keepalive(sshd):
    a = open_transport(board_spec(sshd, "a"))
    b = open_transport(board_spec(sshd, "b"))
    a.shell("true", timeout=20)
    b.shell("true", timeout=20)
    client = _POOL[a._key]
    assert b._key == a._key
    assert a._client() is client and b._client() is client
    assert client.get_transport().packetizer._Packetizer__keepalive_interval == 15


def test_sftp_push_through_the_cache(sshd, tmp_path):
    t = open_transport(board_spec(sshd, workdir=str(tmp_path / "board")))
    src = tmp_path / "m.bin"
    src.write_bytes(os.urandom(200_000))
    cache = DeployCache(t, str(tmp_path / "board"))
    path = cache.ensure(str(src), name=HOSTILE_NAME)
    assert open(path, "rb").read() == src.read_bytes()
    cache.ensure(str(src), name=HOSTILE_NAME)
    assert (t.push_count, cache.pushes, cache.hits) == (1, 1, 1)
    t.pull(path, str(tmp_path / "back.bin"))
    assert (tmp_path / "back.bin").read_bytes() == src.read_bytes()


def test_timeout_stops_the_remote_command(sshd):
    t = open_transport(board_spec(sshd))
    marker = f"farm-ssh-hang-{os.getpid()}"
    t0 = time.monotonic()
    with pytest.raises(CommandTimeout, match="stopped on the device"):
        t.shell(f"sh -c 'sleep 120; echo {marker}' & wait", timeout=1)
    assert time.monotonic() - t0 < 6
    time.sleep(0.3)
    assert pids_matching(marker) == []
    assert t.shell("echo still", timeout=20).stdout == "still\n"  # the link is fine


def test_hung_link_client_deadline_and_remote_cleanup(sshd):
    """The link freezes mid-command: the client gives up at its own deadline, and the
    device-side timeout has already stopped the command."""
    proxy = LinkProxy(sshd.port)
    t = open_transport(board_spec(sshd, "frozen", port=proxy.port))
    marker = f"farm-ssh-frozen-{os.getpid()}"
    assert t.shell("echo up", timeout=20).stdout == "up\n"
    import threading

    threading.Timer(0.5, proxy.freeze).start()  # the command is running by then
    t0 = time.monotonic()
    with pytest.raises(CommandTimeout, match="no answer within"):
        t.shell(f"sh -c 'sleep 120; echo {marker}' & wait", timeout=1.5)
    waited = time.monotonic() - t0
    assert 6 < waited < 13  # 1.5 s + 2 s kill grace + 3 s slack
    assert pids_matching(marker) == []
    proxy.cut()
    t.reset()


def test_dropped_link_is_transient(sshd):
    proxy = LinkProxy(sshd.port)
    t = open_transport(board_spec(sshd, "dropping", port=proxy.port))
    assert t.shell("echo up", timeout=20).stdout == "up\n"
    proxy.cut()
    t0 = time.monotonic()
    with pytest.raises(TransientTransportError):
        t.shell("sleep 5", timeout=20)
    assert time.monotonic() - t0 < 5


def test_changed_host_key_is_refused(sshd, tmp_path):
    import subprocess

    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    known = sshd.write_known_hosts(str(tmp_path / "known_hosts"), key_file=str(other))
    for trust in (False, True):  # trusting new keys never accepts a changed one
        spec = board_spec(sshd, "impostor", known_hosts=known, trust_new_host_key=trust)
        with pytest.raises(HostKeyError, match="host key changed.*Refusing"):
            open_transport(spec).shell("true", timeout=20)


def test_unknown_host_key_needs_explicit_trust(sshd, tmp_path):
    known = tmp_path / "kh"
    known.write_text("")
    with pytest.raises(HostKeyError, match="not in .*refusing"):
        open_transport(board_spec(sshd, "new", known_hosts=str(known))).shell("true", 20)
    with pytest.raises(HostKeyError, match="does not exist"):
        open_transport(board_spec(sshd, "new", known_hosts=str(tmp_path / "nope"))).shell(
            "true", 20)
    t = open_transport(board_spec(sshd, "new", known_hosts=str(known), trust_new_host_key=True))
    assert t.shell("echo ok", timeout=20).stdout == "ok\n"
    with open(sshd.host_key + ".pub") as f:
        key_b64 = f.read().split()[1]
    assert key_b64 in known.read_text()  # recorded for next time


def _pub(path):
    with open(path + ".pub") as f:
        return " ".join(f.read().split()[:2])


def test_known_hosts_with_markers(sshd, tmp_path):
    """OpenSSH's @cert-authority and @revoked lines: a valid file paramiko alone chokes
    on. A CA line is skipped (the board's own key still works); a revoked key is refused
    even when a plain line lists it too, and even with trust_new_host_key."""
    import subprocess

    ca = tmp_path / "ca"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(ca)], check=True)
    board_line = f"[127.0.0.1]:{sshd.port} {_pub(sshd.host_key)}"
    known = tmp_path / "kh_ca"
    known.write_text(f"# a team file\n@cert-authority *.lab.example {_pub(str(ca))}\n"
                     f"{board_line}\nnot a key line at all\n")
    t = open_transport(board_spec(sshd, "ca", known_hosts=str(known)))
    assert t.shell("echo ok", timeout=20).stdout == "ok\n"

    revoked = tmp_path / "kh_revoked"
    revoked.write_text(f"@revoked * {_pub(sshd.host_key)}\n{board_line}\n")
    for trust in (False, True):
        spec = board_spec(sshd, "revoked", known_hosts=str(revoked), trust_new_host_key=trust)
        with pytest.raises(HostKeyError, match=r"marked @revoked in .*kh_revoked; refusing"):
            open_transport(spec).shell("true", timeout=20)
    assert revoked.read_text().count("\n") == 2  # nothing recorded


def test_trusting_a_new_key_keeps_the_file(sshd, tmp_path):
    """A new key is appended as one line; marker lines, comments and lines paramiko
    cannot read stay as they were (paramiko's AutoAddPolicy rewrote the file)."""
    import subprocess

    ca = tmp_path / "ca"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(ca)], check=True)
    original = (f"# keep me\n@cert-authority * {_pub(str(ca))}\n"
                "weird.example ssh-unknown AAAA\nno-newline-at-end")
    known = tmp_path / "kh"
    known.write_text(original)
    spec = board_spec(sshd, "trusting", known_hosts=str(known), trust_new_host_key=True)
    assert open_transport(spec).shell("echo ok", timeout=20).stdout == "ok\n"
    text = known.read_text()
    assert text.startswith(original + "\n")
    assert text[len(original) + 1:] == f"[127.0.0.1]:{sshd.port} {_pub(sshd.host_key)}\n"


def test_known_hosts_that_cannot_be_read(sshd, tmp_path):
    from device_farm.transports.base import TransportError

    (tmp_path / "kh_dir").mkdir()
    with pytest.raises(TransportError, match="known_hosts .*kh_dir: cannot read it"):
        open_transport(board_spec(sshd, "dir", known_hosts=str(tmp_path / "kh_dir"))).shell(
            "true", timeout=20)


def test_two_caches_fill_one_cold_cache_at_once(sshd, tmp_path):
    """Two processes' caches (each its own upload name) push the same files to one board at
    the same moment: both succeed, every file is whole, no upload is left behind. (With
    one shared `.part` name one push truncated the other's: "incomplete on the device".)"""
    import threading

    work = str(tmp_path / "board")
    files = []
    for i in range(3):
        f = tmp_path / f"m{i}.bin"
        f.write_bytes(os.urandom(2_000_000 + i))
        files.append(str(f))
    caches = [DeployCache(open_transport(board_spec(sshd, f"p{k}", workdir=work)), work)
              for k in range(2)]
    assert caches[0]._upload_tag != caches[1]._upload_tag
    results, errors = {}, []
    start = threading.Barrier(2)

    def fill(k):
        start.wait()
        try:
            results[k] = [caches[k].ensure(f) for f in files]
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=fill, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and results[0] == results[1]
    for local, remote in zip(files, results[0]):
        assert open(remote, "rb").read() == open(local, "rb").read()
    left = [n for _, _, ns in os.walk(work) for n in ns if ".part-" in n]
    assert left == []
