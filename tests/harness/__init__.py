"""Real test targets for serverprep: OpenSSH servers and systemd-booted Debian roots."""
