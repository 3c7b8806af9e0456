"""scripts/apt.py's decisions: who may install, and when the package lists are refreshed.

Fakes: apt-get, sudo and the user id are stand-ins here (a unit test must not install packages);
the real installs run whenever a fresh machine lacks Java, Maven, podman, wrk or promtool.
"""

from __future__ import annotations

import subprocess

import pytest

from scripts import apt


@pytest.fixture
def machine(monkeypatch):
    """A fake machine: ``commands`` records what would run; ``failing`` lists commands that fail."""

    class Machine:
        uid = 0
        has = {"apt-get", "sudo"}
        sudo_without_password = True
        failing: list[list[str]] = []
        commands: list[list[str]] = []

    def run(command, **kwargs):  # type: ignore[no-untyped-def]
        if command == ["sudo", "-n", "true"]:
            return subprocess.CompletedProcess(command, 0 if Machine.sudo_without_password else 1)
        Machine.commands.append(command)
        return subprocess.CompletedProcess(command, 1 if command in Machine.failing else 0)

    monkeypatch.setattr(apt.os, "geteuid", lambda: Machine.uid)
    monkeypatch.setattr(apt.shutil, "which", lambda name: f"/usr/bin/{name}" if name in Machine.has else None)
    monkeypatch.setattr(apt.subprocess, "run", run)
    Machine.failing, Machine.commands = [], []
    return Machine


INSTALL = ["env", "DEBIAN_FRONTEND=noninteractive",
           "apt-get", "install", "-y", "-qq", "--no-install-recommends"]  # fmt: skip


def test_root_installs_without_refreshing_lists_that_suffice(machine):
    apt.install("wrk", "uidmap", say=lambda _: None)
    assert machine.commands == [[*INSTALL, "wrk", "uidmap"]]


def test_a_failed_install_refreshes_the_lists_and_tries_once_more(machine):
    machine.failing = [[*INSTALL, "wrk"]]
    with pytest.raises(apt.AptError, match="apt-get install wrk"):
        apt.install("wrk", say=lambda _: None)
    assert machine.commands == [[*INSTALL, "wrk"], ["apt-get", "update", "-qq"], [*INSTALL, "wrk"]]


def test_a_user_goes_through_sudo_only_without_a_password(machine):
    machine.uid = 1000
    apt.install("maven", say=lambda _: None)
    assert machine.commands == [["sudo", "-n", *INSTALL, "maven"]]
    machine.sudo_without_password, machine.commands = False, []
    with pytest.raises(apt.AptError, match="sudo apt-get install -y maven"):
        apt.install("maven", say=lambda _: None)
    assert machine.commands == []  # no prompt in the middle of a run


def test_no_apt_get_says_so(machine):
    machine.has = set()
    with pytest.raises(apt.AptError, match="no apt-get"):
        apt.install("podman", say=lambda _: None)
