import pytest

from serverprep.drivers import OsRelease, parse_os_release


@pytest.mark.parametrize(
    "text, expected",
    [
        ('ID=debian\n', {"ID": "debian"}),
        ('NAME="Ubuntu"\n', {"NAME": "Ubuntu"}),
        ("NAME='Linux Mint'\n", {"NAME": "Linux Mint"}),
        ('PRETTY_NAME="Fedora Linux 41 (Server \\"Edition\\")"\n', {"PRETTY_NAME": 'Fedora Linux 41 (Server "Edition")'}),
        ('X="a \\$b \\`c\\` \\\\d"\n', {"X": "a $b `c` \\d"}),
        ("# comment\n\n   \nID=arch\n", {"ID": "arch"}),
        ('ID_LIKE="rhel centos fedora"\n', {"ID_LIKE": "rhel centos fedora"}),
        ("ID=alpine # trailing comment\n", {"ID": "alpine"}),
        ("not a line\nID=x\n=bad\n", {"ID": "x"}),
        ('BROKEN="unterminated\nID=ok\n', {"BROKEN": "unterminated", "ID": "ok"}),
        ("ID=rocky\r\nVERSION_ID=9.4\r\n", {"ID": "rocky", "VERSION_ID": "9.4"}),
    ],
)
def test_parse_quoting_variants(text, expected):
    assert parse_os_release(text) == expected


def test_mint_keeps_both_codenames_and_family():
    osr = OsRelease.from_text(
        'NAME="Linux Mint"\nVERSION="21.3 (Virginia)"\nID=linuxmint\nID_LIKE="ubuntu debian"\n'
        "VERSION_CODENAME=virginia\nUBUNTU_CODENAME=jammy\nVERSION_ID=\"21.3\"\n"
    )
    assert (osr.id, osr.id_like, osr.version_codename, osr.ubuntu_codename) == ("linuxmint", ("ubuntu", "debian"), "virginia", "jammy")
    assert osr.family == ("linuxmint", "ubuntu", "debian")
    assert osr.version_major == 21


def test_missing_id_defaults_to_linux_as_the_spec_says():
    assert OsRelease.from_text("NAME=Something\n").id == "linux"
    assert OsRelease.from_text("").describe() == "linux"
