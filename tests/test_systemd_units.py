"""The systemd units: hardened as the deployment guide promises, and valid for systemd itself."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNITS = Path(__file__).resolve().parents[1] / "systemd"
NAMES = ("ymds-web.service", "ymds-worker@.service", "ymds-bot.service", "ymds-scheduler.service")
HARDENING = {
    "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
    "PrivateDevices": "yes", "ProtectKernelTunables": "yes", "ProtectKernelModules": "yes",
    "ProtectKernelLogs": "yes", "Restart": "on-failure", "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
}
MAX_EXPOSURE = "20"  # systemd-analyze security's threshold is ten times the printed score: 2.0


def directives(name: str) -> dict[str, list[str]]:
    """Every Key=value of the unit's [Service] section, repeated keys kept in order."""
    section, found = "", {}
    for line in (UNITS / name).read_text().splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            found.setdefault(key, []).append(value)
    return found


@pytest.mark.parametrize("name", NAMES)
def test_every_unit_is_hardened(name):
    service = directives(name)
    for key, value in HARDENING.items():
        assert service.get(key) == [value], f"{name}: {key}"
    assert service["EnvironmentFile"] == ["/etc/ymds/ymds.env"]
    assert "@system-service" in service["SystemCallFilter"]
    assert service["User"][0].startswith("ymds-") and service["User"][0] != "root"


def test_each_service_runs_as_its_own_user():
    users = [directives(name)["User"][0] for name in NAMES]
    assert len(set(users)) == len(users)


def test_only_the_web_server_may_bind_a_privileged_port():
    assert directives("ymds-web.service")["CapabilityBoundingSet"] == ["CAP_NET_BIND_SERVICE"]
    assert directives("ymds-web.service")["AmbientCapabilities"] == ["CAP_NET_BIND_SERVICE"]
    for name in ("ymds-worker@.service", "ymds-bot.service", "ymds-scheduler.service"):
        assert directives(name)["CapabilityBoundingSet"] == [""]
        assert "AmbientCapabilities" not in directives(name)


def test_each_unit_starts_the_matching_command():
    commands = {name: directives(name)["ExecStart"][0].split()[1:] for name in NAMES}
    assert commands == {"ymds-web.service": ["web"], "ymds-worker@.service": ["worker"], "ymds-bot.service": ["bot"],
                        "ymds-scheduler.service": ["scheduler"]}
    assert directives("ymds-web.service")["ExecReload"] == ["/bin/kill -HUP $MAINPID"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_accepts_the_units_and_rates_them_well(tmp_path):
    ymds = Path(sys.executable).with_name("ymds")
    env_file = tmp_path / "ymds.env"
    env_file.write_text("")
    rendered = []
    for name in NAMES:
        text = (UNITS / name).read_text().replace("/opt/ymds/.venv/bin/ymds", str(ymds))
        text = text.replace("/etc/ymds/ymds.env", str(env_file)).replace("/opt/ymds", str(tmp_path))
        target = tmp_path / name.replace("@.service", "@1.service")
        target.write_text(text)
        rendered.append(str(target))
    verify = subprocess.run(["systemd-analyze", "verify", *rendered], capture_output=True, text=True, timeout=60)
    assert verify.returncode == 0, verify.stderr
    for unit in rendered:
        security = subprocess.run(
            ["systemd-analyze", "security", "--offline=yes", f"--threshold={MAX_EXPOSURE}", unit],
            capture_output=True, text=True, timeout=60,
        )
        assert security.returncode == 0, security.stdout[-500:]
