"""Encryption at rest for credentials: Fernet (AES-128-CBC + HMAC-SHA256) from the cryptography package."""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from serverprep.service.errors import StorageError

PREFIX = "v1:"
KEY_ENV = "SERVERPREP_SECRET_KEY"
KEY_FILE = "secret.key"


class SecretBox:
    """Encrypts and decrypts short secrets. Empty stays empty (nothing to hide)."""

    def __init__(self, key: bytes):
        self._fernet = Fernet(key)

    @classmethod
    def from_passphrase(cls, text: str) -> SecretBox:
        # A Fernet key as given, or any other text stretched into one.
        try:
            return cls(text.encode()) if len(base64.urlsafe_b64decode(text.encode())) == 32 else cls._derived(text)
        except ValueError:
            return cls._derived(text)

    @classmethod
    def _derived(cls, text: str) -> SecretBox:
        digest = hashlib.pbkdf2_hmac("sha256", text.encode(), b"serverprep-secret-key-v1", 200_000)
        return cls(base64.urlsafe_b64encode(digest))

    @classmethod
    def load(cls, data_dir: Path) -> SecretBox:
        """The key from $SERVERPREP_SECRET_KEY, else from DATA_DIR/secret.key (made 0600 on first start)."""
        if os.environ.get(KEY_ENV):
            return cls.from_passphrase(os.environ[KEY_ENV])
        path = Path(data_dir) / KEY_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            if path.stat().st_mode & 0o077:
                raise StorageError(f"{path} is readable by others: chmod 600 it") from None
            try:
                return cls(path.read_bytes().strip())
            except (ValueError, OSError) as e:
                raise StorageError(
                    f"{path} is not a usable key ({e}): restore it from the backup made with the database; "
                    f"without it the stored credentials cannot be read (or set ${KEY_ENV})"
                ) from None
        with os.fdopen(fd, "wb") as f:
            f.write(Fernet.generate_key())
        return cls(path.read_bytes().strip())

    def seal(self, value: str) -> str:
        if not value:
            return ""
        return PREFIX + self._fernet.encrypt(value.encode()).decode()

    def open(self, value: str) -> str:
        if not value:
            return ""
        if not value.startswith(PREFIX):
            raise StorageError("a stored secret is not encrypted: the database was written by something else")
        try:
            return self._fernet.decrypt(value[len(PREFIX) :].encode()).decode()
        except InvalidToken:
            raise StorageError(
                "cannot decrypt stored credentials: the secret key is not the one they were stored with "
                f"(${KEY_ENV} or the data directory's {KEY_FILE})"
            ) from None
